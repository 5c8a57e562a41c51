//! Caller-provided byte buffers: the core never allocates unless given a `Vec`.

/// A byte buffer the logs read into and write from.
///
/// Fixed buffers (`[u8; N]`, `&mut [u8]`) have the size they have; a `Vec<u8>`
/// (with the `alloc` feature) grows on demand up to what a frame needs.
pub trait Buffer {
    /// The whole buffer.
    fn bytes(&self) -> &[u8];
    /// The whole buffer, writable.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Makes the buffer at least `len` bytes long if it can; returns whether it is.
    fn grow_to(&mut self, len: usize) -> bool {
        self.bytes().len() >= len
    }
    /// Whether [`grow_to`](Self::grow_to) can make it longer (a `Vec`): then a reader
    /// grows it only to what the bytes present need, never ahead of them.
    fn can_grow(&self) -> bool {
        false
    }
}

impl Buffer for &mut [u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl<const N: usize> Buffer for [u8; N] {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl<B: Buffer + ?Sized> Buffer for &mut B {
    fn bytes(&self) -> &[u8] {
        (**self).bytes()
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        (**self).bytes_mut()
    }
    fn grow_to(&mut self, len: usize) -> bool {
        (**self).grow_to(len)
    }
    fn can_grow(&self) -> bool {
        (**self).can_grow()
    }
}

#[cfg(feature = "alloc")]
impl Buffer for alloc::vec::Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
    fn grow_to(&mut self, len: usize) -> bool {
        if self.len() < len {
            self.resize(len, 0);
        }
        true
    }
    fn can_grow(&self) -> bool {
        true
    }
}
