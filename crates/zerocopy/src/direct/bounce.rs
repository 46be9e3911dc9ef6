//! The bounce buffer: requests whose memory, position or length break the alignment rules pass
//! their unaligned parts (or, with misaligned memory, everything) through an aligned buffer.

use std::sync::MutexGuard;

use nix::errno::Errno;

use super::{nonzero, to_off, DirectFile, BOUNCE_SPAN};
use crate::error::{Error, Result};
use crate::sys::direct::{self as sys, AlignedBuf};
use crate::sys::file;
use crate::sys::probe;

impl DirectFile {
    /// The span a bounced piece covers: `(span_start, head, take, span_len)`, where `head` is the gap
    /// between the span's aligned start and `at`, and `take` the caller's bytes in it. One block when
    /// the caller's memory is aligned from the next block boundary on (the head or tail of a request),
    /// else up to [`BOUNCE_SPAN`] (misaligned memory: everything goes through the bounce buffer).
    fn bounce_span(&self, user: &[u8], at: u64) -> (u64, usize, usize, usize) {
        let block = self.block();
        let head = (at % block as u64) as usize;
        let to_boundary = block - head;
        let aligned_after = user.len() > to_boundary
            && sys::misalignment(&user[to_boundary..], self.alignment.memory) == 0;
        let take = if aligned_after || user.len() <= to_boundary {
            user.len().min(to_boundary)
        } else {
            user.len().min(BOUNCE_SPAN.max(block) - head)
        };
        let span_len = (head + take).div_ceil(block) * block;
        (at - head as u64, head, take, span_len)
    }

    /// Whether the next piece at `at` can go straight between the device and `user`.
    fn direct_ok(&self, user: &[u8], at: u64) -> bool {
        let block = self.block();
        at % block as u64 == 0
            && user.len() >= block
            && sys::misalignment(user, self.alignment.memory) == 0
    }

    pub(super) fn read_bounced(
        &self,
        dst: &mut [u8],
        at: u64,
        scratch: &mut Option<AlignedBuf>,
    ) -> Result<(usize, bool)> {
        if self.direct_ok(dst, at) {
            let whole = dst.len() - dst.len() % self.block();
            return self.read_direct(&mut dst[..whole], at);
        }
        let (start, head, take, span_len) = self.bounce_span(dst, at);
        let bounce = self.bounce_buffer(scratch, span_len)?;
        let n = file::read_at(&self.fd, &mut bounce[..span_len], Some(to_off(start)?))?;
        let got = n.saturating_sub(head).min(take);
        dst[..got].copy_from_slice(&bounce[head..head + got]);
        Ok((got, got < take))
    }

    pub(super) fn write_bounced(
        &self,
        src: &[u8],
        at: u64,
        scratch: &mut Option<AlignedBuf>,
    ) -> Result<usize> {
        if self.direct_ok(src, at) {
            let whole = src.len() - src.len() % self.block();
            return self.write_direct(&src[..whole], at);
        }
        let block = self.block();
        let (start, head, take, span_len) = self.bounce_span(src, at);
        let size = self.size()?;
        let bounce = self.bounce_buffer(scratch, span_len)?;
        let span = &mut bounce[..span_len];
        span.fill(0);
        // Blocks only partly covered by the caller's bytes keep the file's existing bytes around them.
        let end = at + take as u64;
        let tail_start = end - end % block as u64;
        let mut partial = Vec::with_capacity(2);
        if head > 0 {
            partial.push(start);
        }
        if end % block as u64 != 0 && (tail_start != start || head == 0) {
            partial.push(tail_start);
        }
        for block_start in partial.into_iter().filter(|&b| b < size) {
            if !self.readable {
                return Err(Error::new(Errno::EBADF, "read").with_detail(
                    "a partial-block write over existing data must read that block first: open the file read-write",
                ));
            }
            let from = (block_start - start) as usize;
            file::read_at(
                &self.fd,
                &mut span[from..from + block],
                Some(to_off(block_start)?),
            )?;
        }
        span[head..head + take].copy_from_slice(&src[..take]);
        let n = nonzero(file::write_at(&self.fd, span, Some(to_off(start)?))?)?;
        let written = n.saturating_sub(head).min(take);
        // The padding of a block past the old end made the file longer than intended: trim it.
        let intended = size.max(at + written as u64);
        if start + n as u64 > intended {
            file::ftruncate(&self.fd, to_off(intended)?)?;
        }
        nonzero(written)
    }

    /// A bounce buffer of at least `len` bytes: the one already taken by this step, the file's cached
    /// one, or a new one.
    fn bounce_buffer<'a>(
        &self,
        scratch: &'a mut Option<AlignedBuf>,
        len: usize,
    ) -> Result<&'a mut AlignedBuf> {
        if scratch.is_none() {
            *scratch = self.lock_bounce().take();
        }
        // Page-aligned at least: a buffer straddling pages needs twice the DMA segments.
        let align = (self.alignment.memory.max(self.alignment.offset) as usize)
            .max(probe::page_size())
            .next_power_of_two();
        match scratch {
            Some(buf) if buf.len() >= len && buf.align() >= align => {}
            _ => *scratch = Some(AlignedBuf::zeroed(len.max(self.block()), align)?),
        }
        scratch
            .as_mut()
            .ok_or_else(|| Error::new(Errno::ENOMEM, "alloc"))
    }

    /// Keeps the larger of the step's bounce buffer and the cached one for the next step.
    pub(super) fn give_back(&self, scratch: Option<AlignedBuf>) {
        let Some(buf) = scratch else { return };
        let mut cached = self.lock_bounce();
        if cached.as_ref().map_or(true, |c| c.len() < buf.len()) {
            *cached = Some(buf);
        }
    }

    fn lock_bounce(&self) -> MutexGuard<'_, Option<AlignedBuf>> {
        crate::sync::lock(&self.bounce)
    }
}
