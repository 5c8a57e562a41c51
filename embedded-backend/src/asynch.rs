//! Running the backend over an `embedded-storage-async` driver (feature `async`).
//!
//! The core's state machines (WAL, record log, checkpoint store) are blocking: they
//! call [`Storage`](durability_core::Storage) methods and use the result at once. So
//! instead of a second copy of the backend, [`BlockOn`] turns an async
//! [`embedded_storage_async::nor_flash::NorFlash`] driver into a blocking
//! [`embedded_storage::nor_flash::NorFlash`], and the one [`FlashStorage`] runs over it:
//! the same format, the same mount, the same write rules, byte for byte.
//!
//! ```
//! # use durability_embedded::asynch::BlockOn;
//! # use durability_embedded::FlashStorage;
//! # fn demo<F: embedded_storage_async::nor_flash::NorFlash>(driver: F) {
//! let storage = FlashStorage::<_, 16>::new(BlockOn::new(driver), 0, 16);
//! # }
//! ```
//!
//! # What "blocking" means here
//!
//! Each flash operation (one `read`, `write` or `erase` of the driver) is polled to
//! completion inside the call, with a no-op waker, in a busy loop
//! ([`core::hint::spin_loop`] between polls). No allocator, no `unsafe`, no executor.
//!
//! - It works with drivers whose futures make progress when polled: futures that check
//!   a status register, a DMA or interrupt flag set from an interrupt handler, or a
//!   hardware timer, on every poll. Those are most flash drivers.
//! - **Limitation: it blocks the calling task, and so its executor, for the whole
//!   duration of each operation** (an erase can take tens to hundreds of milliseconds
//!   on NOR flash). Other tasks of the same executor do not run meanwhile.
//! - **Limitation: a future that can only finish after another task of the same
//!   executor runs never finishes** (a driver behind a bus mutex held by another task,
//!   or a driver that hands requests to a flash task over a channel): the loop spins
//!   forever. Such a driver must not be used through this adapter, or must be given
//!   its own executor/priority level.
//! - The waker is a no-op, so a driver that only makes progress when woken (and does
//!   no work inside `poll`) still completes, since the loop polls again without
//!   waiting for a wake — at the price of spinning.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use embedded_storage_async::nor_flash as asynch;

#[cfg(doc)]
use crate::FlashStorage;

/// A blocking [`NorFlash`] over an async driver `F`: each operation is awaited to
/// completion inside the call (see the [module docs](self) for what that costs and
/// which drivers it suits). Geometry and errors are `F`'s.
///
/// `embedded-storage-async` implements its traits for `&mut T`, so `BlockOn<&mut F>`
/// keeps the driver with the caller.
#[derive(Debug)]
pub struct BlockOn<F> {
    flash: F,
}

impl<F> BlockOn<F> {
    /// Wraps an async driver.
    pub const fn new(flash: F) -> Self {
        BlockOn { flash }
    }

    /// The driver, for inspection.
    pub fn inner(&self) -> &F {
        &self.flash
    }

    /// The driver, mutably.
    pub fn inner_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives back the driver.
    pub fn into_inner(self) -> F {
        self.flash
    }
}

/// Polls `fut` until it is ready, with a no-op waker.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        core::hint::spin_loop();
    }
}

impl<F: asynch::ErrorType> ErrorType for BlockOn<F> {
    type Error = F::Error;
}

impl<F: asynch::ReadNorFlash> ReadNorFlash for BlockOn<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        block_on(self.flash.read(offset, bytes))
    }

    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl<F: asynch::NorFlash> NorFlash for BlockOn<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        block_on(self.flash.erase(from, to))
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        block_on(self.flash.write(offset, bytes))
    }
}
