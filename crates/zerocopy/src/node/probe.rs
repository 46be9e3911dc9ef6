//! `capabilities` / `capabilitiesSync`.
//!
//! Outside Linux both return the kernel answers of [`probe::kernel`] (every mechanism unavailable) and
//! no filesystem: the TypeScript layer describes the path itself.

use napi_derive::napi;

use crate::sys::probe::{self, AlignmentSource, DirectIoAlignment};

/// O_DIRECT alignment for one filesystem.
#[napi(object)]
pub struct NativeDirectIoAlignment {
    pub memory: u32,
    pub offset: u32,
    /// "statx" | "blockdev" | "default"
    pub source: String,
}

impl From<DirectIoAlignment> for NativeDirectIoAlignment {
    fn from(a: DirectIoAlignment) -> Self {
        NativeDirectIoAlignment {
            memory: a.memory,
            offset: a.offset,
            source: match a.source {
                AlignmentSource::Statx => "statx",
                AlignmentSource::BlockDevice => "blockdev",
                AlignmentSource::Default => "default",
            }
            .to_owned(),
        }
    }
}

/// What one filesystem supports.
#[napi(object)]
pub struct NativeFsCapabilities {
    pub fs_type: String,
    pub block_size: f64,
    pub reflink: Option<bool>,
    pub copy_file_range: Option<bool>,
    pub direct_io: Option<bool>,
    pub direct_io_alignment: Option<NativeDirectIoAlignment>,
}

/// What the kernel supports, plus the filesystem of the given path.
#[napi(object)]
pub struct NativeCapabilities {
    pub kernel: String,
    pub page_size: u32,
    pub copy_file_range: bool,
    pub sendfile: bool,
    pub splice: bool,
    pub tee: bool,
    pub vmsplice: bool,
    pub pipe_max_size: Option<u32>,
    pub filesystem: Option<NativeFsCapabilities>,
}

fn kernel_answers(filesystem: Option<NativeFsCapabilities>) -> NativeCapabilities {
    let k = probe::kernel();
    NativeCapabilities {
        kernel: k.kernel.clone(),
        page_size: u32::try_from(k.page_size).unwrap_or(u32::MAX),
        copy_file_range: k.copy_file_range,
        sendfile: k.sendfile,
        splice: k.splice,
        tee: k.tee,
        vmsplice: k.vmsplice,
        pipe_max_size: k.pipe_max_size.and_then(|v| u32::try_from(v).ok()),
        filesystem,
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::PathBuf;

    use napi::bindgen_prelude::{AsyncTask, Buffer};
    use napi_derive::napi;

    use super::{
        kernel_answers, NativeCapabilities, NativeDirectIoAlignment, NativeFsCapabilities,
    };
    use crate::node::error::to_napi;
    use crate::node::task::Blocking;
    use crate::sys::{direct, probe};

    fn gather(path: Option<PathBuf>) -> crate::Result<NativeCapabilities> {
        let filesystem = match path {
            Some(p) => {
                let mut fs = probe::filesystem(&p)?;
                // A file (or block device) answers for itself; the filesystem probe for the rest.
                if fs.direct_io != Some(false) {
                    if let Some(own) = direct::path_alignment(&p)? {
                        fs.direct_io_alignment = Some(own);
                    }
                }
                Some(fs)
            }
            None => None,
        }
        .map(|fs| NativeFsCapabilities {
            fs_type: fs.fs_type,
            block_size: fs.block_size as f64,
            reflink: fs.reflink,
            copy_file_range: fs.copy_file_range,
            direct_io: fs.direct_io,
            direct_io_alignment: fs.direct_io_alignment.map(NativeDirectIoAlignment::from),
        });
        Ok(kernel_answers(filesystem))
    }

    fn to_path(path: Option<Buffer>) -> Option<PathBuf> {
        path.map(|p| crate::node::task::path_of(&p))
    }

    /// Probes (once, then cached) the kernel and, given a path, its filesystem.
    #[napi(ts_return_type = "Promise<NativeCapabilities>")]
    pub fn capabilities(path: Option<Buffer>) -> AsyncTask<Blocking<NativeCapabilities>> {
        let path = to_path(path);
        AsyncTask::new(Blocking::new(move || gather(path)))
    }

    /// The synchronous twin of `capabilities`.
    #[napi(js_name = "capabilitiesSync")]
    pub fn capabilities_sync(path: Option<Buffer>) -> napi::Result<NativeCapabilities> {
        gather(to_path(path)).map_err(to_napi)
    }
}

#[cfg(not(target_os = "linux"))]
mod stub {
    use napi::bindgen_prelude::Buffer;
    use napi_derive::napi;

    use super::{kernel_answers, NativeCapabilities};

    /// Outside Linux: nothing to probe, so no thread-pool hop; JavaScript awaits the plain value.
    #[napi(ts_return_type = "Promise<NativeCapabilities>")]
    pub fn capabilities(_path: Option<Buffer>) -> NativeCapabilities {
        kernel_answers(None)
    }

    /// The synchronous twin of `capabilities`.
    #[napi(js_name = "capabilitiesSync")]
    pub fn capabilities_sync(_path: Option<Buffer>) -> NativeCapabilities {
        kernel_answers(None)
    }
}
