//! The record log: one segment of checksummed records, appended and read in order.
//!
//! Same frames, sync markers and end rules as the final segment of the WAL (see
//! [`crate::segment`]). The log is segment [`RECORD_LOG_SEGMENT`] of its storage (the
//! std facade maps it to one file). Reopening a log whose tail is torn cuts the tail
//! (truncate, then a barrier) before the first append, so an append never follows garbage.

use crate::buffer::Buffer;
use crate::error::{Corruption, Error, Location, StorageError, StorageErrorKind};
use crate::frame::{LogKind, SegmentHeader, MAX_ENTRY_LEN};
use crate::segment::{self, Appender, Bound, Tail, MIN_WRITE_BUFFER};
use crate::storage::{ErrorType, Storage};
use crate::ReadMode;

type Res<T, S> = Result<T, Error<<S as ErrorType>::Error>>;

/// The segment number a record log lives in.
pub const RECORD_LOG_SEGMENT: u64 = 0;

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadReport {
    /// Records delivered.
    pub records: u64,
    /// Payload bytes delivered.
    pub payload_bytes: u64,
    /// Where a best-effort read stopped at a torn tail, if it did.
    pub torn_at: Option<Location>,
}

/// Reads a record log.
pub struct RecordLogReader<S, B> {
    st: S,
    buf: B,
}

impl<S: Storage, B: Buffer> RecordLogReader<S, B> {
    /// A reader over `storage`, reading through `buf`.
    pub fn new(storage: S, buf: B) -> Self {
        RecordLogReader { st: storage, buf }
    }

    /// Calls `f(index, payload)` for each record in order (indices from 1). A torn tail
    /// is an error in strict mode and the end of the log in best-effort mode.
    pub fn read<F>(&mut self, mode: ReadMode, mut f: F) -> Res<ReadReport, S>
    where
        F: FnMut(u64, &[u8]) -> Res<(), S>,
    {
        let mut report = ReadReport::default();
        let torn = match segment::read_header(&mut self.st, RECORD_LOG_SEGMENT)? {
            None => {
                segment::check_torn_header(&mut self.st, &mut self.buf, RECORD_LOG_SEGMENT, false)?;
                Some(0)
            }
            Some(h) => {
                check_kind(&h)?;
                let end =
                    segment::scan(&mut self.st, &mut self.buf, &h, Bound::Open, 0, |i, p| {
                        report.records += 1;
                        report.payload_bytes += p.len() as u64;
                        f(i, p)
                    })?;
                (end.tail == Tail::Torn).then_some(end.end as u64)
            }
        };
        report.torn_at = torn.map(|offset| Location {
            segment: RECORD_LOG_SEGMENT,
            offset,
        });
        match (mode, report.torn_at) {
            (ReadMode::Strict, Some(at)) => Err(Error::TornTail { at }),
            _ => Ok(report),
        }
    }

    /// Gives back the storage and buffer.
    pub fn into_parts(self) -> (S, B) {
        (self.st, self.buf)
    }
}

fn check_kind<E>(h: &SegmentHeader) -> Result<(), Error<E>> {
    if h.kind != LogKind::RecordLog || h.segment != RECORD_LOG_SEGMENT {
        return Err(Error::corrupt(h.segment, 0, Corruption::ForeignSegment));
    }
    Ok(())
}

enum State {
    Unopened,
    Open(Appender),
    Poisoned,
}

/// Appends records to a record log. Opens lazily; see [`RecordLogWriter::open`].
pub struct RecordLogWriter<S, B> {
    st: S,
    buf: B,
    log_id: u64,
    state: State,
    next_index: u64,
}

impl<S: Storage, B: Buffer> RecordLogWriter<S, B> {
    /// A writer that opens the log on first use. `log_id` is used only if the log is new.
    pub fn new(storage: S, buf: B, log_id: u64) -> Self {
        RecordLogWriter {
            st: storage,
            buf,
            log_id,
            state: State::Unopened,
            next_index: 1,
        }
    }

    /// Opens now: creates an absent log, continues a clean one, cuts a torn tail of an
    /// existing one (durably) before anything is appended. Corruption, or a file that is
    /// not a record log, is an error and nothing is changed.
    pub fn open(storage: S, buf: B, log_id: u64) -> Res<Self, S> {
        let mut w = Self::new(storage, buf, log_id);
        w.ensure_open()?;
        Ok(w)
    }

    /// Index the next record gets.
    pub fn next_index(&mut self) -> Res<u64, S> {
        self.ensure_open()?;
        Ok(self.next_index)
    }

    /// Whether an earlier failure poisoned this writer.
    pub fn is_poisoned(&self) -> bool {
        matches!(self.state, State::Poisoned)
    }

    /// Gives back the storage and buffer; staged bytes are discarded (flush first).
    pub fn into_parts(self) -> (S, B) {
        (self.st, self.buf)
    }

    fn ensure_open(&mut self) -> Res<(), S> {
        match self.state {
            State::Open(_) => Ok(()),
            State::Poisoned => Err(Error::Poisoned),
            State::Unopened => match self.open_log() {
                Ok(app) => {
                    self.state = State::Open(app);
                    Ok(())
                }
                Err(e) => {
                    self.state = State::Poisoned;
                    Err(e)
                }
            },
        }
    }

    fn open_log(&mut self) -> Res<Appender, S> {
        let ws = self.st.write_size();
        if !ws.is_power_of_two() || ws > crate::frame::MAX_ALIGN {
            return Err(Error::InvalidConfig(
                "write size must be a power of two up to 32",
            ));
        }
        if !self.buf.grow_to(MIN_WRITE_BUFFER) {
            return Err(Error::BufferTooSmall {
                needed: MIN_WRITE_BUFFER as u64,
            });
        }
        let seg = RECORD_LOG_SEGMENT;
        let exists = match self.st.len(seg) {
            Ok(_) => true,
            Err(e) if e.kind() == StorageErrorKind::NotFound => false,
            Err(e) => return Err(Error::Storage(e)),
        };
        let header = if exists {
            segment::read_header(&mut self.st, seg)?
        } else {
            None
        };
        let Some(h) = header else {
            if exists {
                segment::check_torn_header(&mut self.st, &mut self.buf, seg, false)?;
                crate::wal::remove_torn_creation(&mut self.st, seg)?;
            }
            let hdr = SegmentHeader {
                kind: LogKind::RecordLog,
                align_log2: ws.trailing_zeros() as u8,
                log_id: self.log_id,
                segment: seg,
                first_id: 1,
                prev_end: 0,
                form: crate::wal::new_log_form(&self.st),
            };
            return Appender::create(&mut self.st, &hdr);
        };
        check_kind(&h)?;
        self.log_id = h.log_id;
        let end = segment::scan(
            &mut self.st,
            &mut self.buf,
            &h,
            Bound::Open,
            u64::MAX,
            |_, _| Ok(()),
        )?;
        self.next_index = end.next_id;
        if !self.st.resume_in_place() {
            return Err(Error::InvalidConfig(
                "record log needs a medium that can append after reopening",
            ));
        }
        if end.tail == Tail::Torn {
            self.st
                .truncate(seg, end.end as u64)
                .map_err(Error::Storage)?;
            self.st.sync(seg).map_err(Error::Storage)?;
        }
        Ok(Appender::resume(&h, end.end))
    }

    /// Appends one record (staged, not yet durable).
    pub fn append(&mut self, payload: &[u8]) -> Res<u64, S> {
        if payload.len() > MAX_ENTRY_LEN as usize {
            return Err(Error::EntryTooLarge {
                len: payload.len() as u64,
                max: MAX_ENTRY_LEN as u64,
            });
        }
        self.ensure_open()?;
        let index = self.next_index;
        if index == u64::MAX {
            return Err(Error::InvalidConfig("record indices exhausted"));
        }
        let State::Open(app) = &mut self.state else {
            unreachable!("opened above")
        };
        let max = app.form().max_entry_len();
        if payload.len() > max as usize {
            return Err(Error::EntryTooLarge {
                len: payload.len() as u64,
                max: max as u64,
            });
        }
        let r = app
            .stage_marker(&mut self.st, &mut self.buf, index, self.log_id)
            .and_then(|_| app.append(&mut self.st, &mut self.buf, index, payload));
        self.poison_on_storage_error(r)?;
        self.next_index += 1;
        Ok(index)
    }

    /// Appends a record serialized in place by `encode` (see
    /// [`WalWriter::append_with`](crate::wal::WalWriter::append_with)).
    pub fn append_with<F>(&mut self, encode: F) -> Res<Option<u64>, S>
    where
        F: FnMut(&mut [u8]) -> Option<usize>,
    {
        self.ensure_open()?;
        let index = self.next_index;
        if index == u64::MAX {
            return Err(Error::InvalidConfig("record indices exhausted"));
        }
        let State::Open(app) = &mut self.state else {
            unreachable!("opened above")
        };
        let want = app.marker_len() as usize;
        let r = app.stage_with(&mut self.st, &mut self.buf, index, want, encode);
        match self.poison_on_storage_error(r)? {
            Some((total, reserve, _)) => {
                let log_id = self.log_id;
                let State::Open(app) = &mut self.state else {
                    unreachable!()
                };
                app.commit(self.buf.bytes_mut(), reserve, total, index, log_id, true);
                self.next_index += 1;
                Ok(Some(index))
            }
            None => Ok(None),
        }
    }

    /// Hands staged records to storage (not a barrier).
    pub fn flush(&mut self) -> Res<(), S> {
        self.ensure_open()?;
        let State::Open(app) = &mut self.state else {
            unreachable!()
        };
        let r = app.flush(&mut self.st, &mut self.buf);
        self.poison_on_storage_error(r)
    }

    /// Flushes and runs a barrier: on `Ok`, every record appended so far is durable.
    pub fn sync(&mut self) -> Res<(), S> {
        self.ensure_open()?;
        let State::Open(app) = &mut self.state else {
            unreachable!()
        };
        let r = app.sync(&mut self.st, &mut self.buf).map(|_| ());
        self.poison_on_storage_error(r)
    }

    fn poison_on_storage_error<T>(&mut self, r: Res<T, S>) -> Res<T, S> {
        if let Err(Error::Storage(_)) = &r {
            self.state = State::Poisoned;
        }
        r
    }
}

impl<S: Storage, B: Buffer> RecordLogReader<S, B> {
    /// Every record as bytes.
    #[cfg(feature = "alloc")]
    pub fn read_to_vec(&mut self, mode: ReadMode) -> Res<alloc::vec::Vec<alloc::vec::Vec<u8>>, S> {
        let mut out = alloc::vec::Vec::new();
        self.read(mode, |_, bytes| {
            out.push(bytes.to_vec());
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads postcard-encoded records, decoding each into `T`.
    pub fn read_postcard<T, F>(&mut self, mode: ReadMode, mut f: F) -> Res<ReadReport, S>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut(u64, T) -> Res<(), S>,
    {
        self.read(mode, |index, bytes| {
            let value =
                postcard::from_bytes(bytes).map_err(|_| Error::Decode { entry_id: index })?;
            f(index, value)
        })
    }
}
