//! Outside Linux: nothing to probe.

use super::{page_size, KernelCapabilities};

/// None of Linux's mechanisms exist here.
pub(super) fn probe_kernel() -> KernelCapabilities {
    KernelCapabilities {
        kernel: String::new(),
        page_size: page_size(),
        copy_file_range: false,
        sendfile: false,
        splice: false,
        tee: false,
        vmsplice: false,
        pipe_max_size: None,
    }
}
