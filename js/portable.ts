/**
 * Moved to js/platform.ts (requireLinux, unavailable) and js/copy-portable.ts (the portable copy).
 * Kept only for js/http.ts's import until it is switched to './platform.js'; then delete this file.
 */
export { requireLinux, unavailable } from './platform.js';
