//! The node's spool: an append-only log (`DATA_DIR/spool/<n>.log`) of what the node still
//! has to deliver to the primary — log chunks, status reports — and of the process groups of
//! its running jobs. Everything is written here before it is sent, and released (by a
//! `Released` record) once the primary has taken it, so a node restart loses nothing.
//!
//! A log of segments rather than a file per entry: creating and removing files for every
//! job costs the file system far more than the job (inode allocation dominated the jobs
//! benchmark). A segment is removed once everything in it is released and a newer one is
//! being written. A torn record at a segment's end (a crash mid-write) ends that segment's
//! reading; records are not fsynced, so they survive a crash of the process, not of the
//! machine.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::protocol::{ChunkParams, JobReport};

/// A segment is closed (and a new one started) once it holds this much.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Each record starts with the lengths of its header and of its data (u32, little-endian).
const PREFIX: usize = 8;

/// What one record says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A chunk of a job's output; its bytes are the record's data.
    Chunk { job: String, params: ChunkParams },
    /// A job's status report.
    Report { job: String, report: JobReport },
    /// A job's process group, so that a restart after a crash can end what is left of it.
    Process { job: String, pid: u32, started: u64, attempt: u32 },
    /// The record at `at` needs nothing more.
    Released { at: Location },
}

impl Record {
    /// The job a record is about (none for `Released`).
    pub fn job(&self) -> Option<&str> {
        match self {
            Record::Chunk { job, .. } | Record::Report { job, .. } | Record::Process { job, .. } => Some(job),
            Record::Released { .. } => None,
        }
    }
}

/// Where a record starts: its segment and its offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
}

struct Segments {
    active: u64,
    active_len: u64,
    writer: File,
    /// Every segment still on disk, for reading.
    files: HashMap<u64, Arc<File>>,
    /// Per segment, how many of its records are not released yet.
    live: HashMap<u64, usize>,
}

/// The spool of one node.
pub struct Spool {
    dir: PathBuf,
    segments: Mutex<Segments>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Spool {
    /// Opens the spool in `dir`; returns it with every record a previous run left
    /// unreleased, in the order they were written. Writing goes to a fresh segment.
    pub fn open(dir: &Path) -> io::Result<(Spool, Vec<(Location, Record)>)> {
        std::fs::create_dir_all(dir)?;
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut pending = BTreeMap::new();
        let mut files = HashMap::new();
        for &id in &ids {
            let file = File::open(segment_path(dir, id))?;
            for (offset, record) in read_segment(&file, id)? {
                match record {
                    Record::Released { at } => {
                        pending.remove(&at);
                    }
                    record => {
                        pending.insert(Location { segment: id, offset }, record);
                    }
                }
            }
            files.insert(id, Arc::new(file));
        }
        let mut live: HashMap<u64, usize> = HashMap::new();
        for at in pending.keys() {
            *live.entry(at.segment).or_default() += 1;
        }
        // Segments with nothing left to deliver go now.
        for id in ids.iter().filter(|id| !live.contains_key(id)) {
            files.remove(id);
            std::fs::remove_file(segment_path(dir, *id))?;
        }
        let active = ids.last().map_or(0, |id| id + 1);
        let writer = create_segment(dir, active)?;
        files.insert(active, Arc::new(writer.try_clone()?));
        let segments = Segments { active, active_len: 0, writer, files, live };
        Ok((Spool { dir: dir.to_owned(), segments: Mutex::new(segments) }, pending.into_iter().collect()))
    }

    fn segments(&self) -> std::sync::MutexGuard<'_, Segments> {
        self.segments.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a record (with its data, for a chunk); it stays until released.
    pub fn append(&self, record: &Record, data: &[u8]) -> io::Result<Location> {
        let bytes = encode(record, data)?;
        let mut s = self.segments();
        if s.active_len >= SEGMENT_BYTES {
            self.rotate(&mut s)?;
        }
        let at = Location { segment: s.active, offset: s.active_len };
        s.writer.write_all(&bytes)?;
        s.active_len += bytes.len() as u64;
        if !matches!(record, Record::Released { .. }) {
            *s.live.entry(at.segment).or_default() += 1;
        }
        Ok(at)
    }

    /// Reads back the record at `at`, with its data.
    pub fn read(&self, at: Location) -> io::Result<(Record, Vec<u8>)> {
        let file = self.segments().files.get(&at.segment).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("spool segment {} is gone", at.segment))
        })?;
        let mut prefix = [0u8; PREFIX];
        file.read_exact_at(&mut prefix, at.offset)?;
        let (header_len, data_len) = lengths(&prefix);
        let mut bytes = vec![0u8; header_len + data_len];
        file.read_exact_at(&mut bytes, at.offset + PREFIX as u64)?;
        let data = bytes.split_off(header_len);
        let record = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
        Ok((record, data))
    }

    /// Marks the record at `at` as needing nothing more; its segment goes once all of its
    /// records have.
    pub fn release(&self, at: Location) -> io::Result<()> {
        self.append(&Record::Released { at }, &[])?;
        let mut s = self.segments();
        let left = s.live.get_mut(&at.segment).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == Some(0) && at.segment != s.active {
            self.remove_segment(&mut s, at.segment)?;
        }
        Ok(())
    }

    /// Starts a new segment; the old one goes at once if nothing in it is live.
    fn rotate(&self, s: &mut Segments) -> io::Result<()> {
        let old = s.active;
        let next = old + 1;
        s.writer = create_segment(&self.dir, next)?;
        s.files.insert(next, Arc::new(s.writer.try_clone()?));
        s.active = next;
        s.active_len = 0;
        if s.live.get(&old).copied().unwrap_or(0) == 0 {
            self.remove_segment(s, old)?;
        }
        Ok(())
    }

    fn remove_segment(&self, s: &mut Segments, id: u64) -> io::Result<()> {
        s.live.remove(&id);
        s.files.remove(&id);
        std::fs::remove_file(segment_path(&self.dir, id))
    }

    /// How many segment files the spool holds.
    #[cfg(test)]
    fn segment_count(&self) -> usize {
        self.segments().files.len()
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:012}.log"))
}

fn create_segment(dir: &Path, id: u64) -> io::Result<File> {
    std::fs::OpenOptions::new().create(true).read(true).append(true).open(segment_path(dir, id))
}

fn encode(record: &Record, data: &[u8]) -> io::Result<Vec<u8>> {
    let header = serde_json::to_vec(record).map_err(io::Error::other)?;
    let too_big = |_| io::Error::new(io::ErrorKind::InvalidInput, "spool record too large");
    let header_len = u32::try_from(header.len()).map_err(too_big)?;
    let data_len = u32::try_from(data.len()).map_err(too_big)?;
    let mut bytes = Vec::with_capacity(PREFIX + header.len() + data.len());
    bytes.extend_from_slice(&header_len.to_le_bytes());
    bytes.extend_from_slice(&data_len.to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
    Ok(bytes)
}

fn lengths(prefix: &[u8; PREFIX]) -> (usize, usize) {
    let [a, b, c, d, e, f, g, h] = *prefix;
    let header = u32::from_le_bytes([a, b, c, d]);
    let data = u32::from_le_bytes([e, f, g, h]);
    (usize::try_from(header).unwrap_or(usize::MAX), usize::try_from(data).unwrap_or(usize::MAX))
}

/// Every whole record of a segment with its offset; a torn or unreadable tail ends it.
fn read_segment(file: &File, id: u64) -> io::Result<Vec<(u64, Record)>> {
    let len = file.metadata()?.len();
    let mut records = Vec::new();
    let mut offset = 0u64;
    while offset + PREFIX as u64 <= len {
        let mut prefix = [0u8; PREFIX];
        file.read_exact_at(&mut prefix, offset)?;
        let (header_len, data_len) = lengths(&prefix);
        let end = offset + (PREFIX + header_len + data_len) as u64;
        if end > len {
            break;
        }
        let mut header = vec![0u8; header_len];
        file.read_exact_at(&mut header, offset + PREFIX as u64)?;
        match serde_json::from_slice(&header) {
            Ok(record) => records.push((offset, record)),
            Err(e) => {
                tracing::warn!(segment = id, offset, error = %e, "unreadable spool record; ignoring the rest of its segment");
                return Ok(records);
            }
        }
        offset = end;
    }
    if offset < len {
        tracing::warn!(
            segment = id,
            offset,
            "torn record at the end of a spool segment (a crash mid-write); ignoring it"
        );
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{LogStream, ReportedState};

    fn chunk(job: &str, seq: u64) -> Record {
        Record::Chunk { job: job.into(), params: ChunkParams { attempt: 1, seq, stream: LogStream::Stdout } }
    }

    fn running(job: &str) -> Record {
        Record::Report {
            job: job.into(),
            report: JobReport {
                attempt: 1,
                state: ReportedState::Running,
                exit_code: None,
                error: None,
                last_seq: None,
            },
        }
    }

    #[test]
    fn records_read_back_and_survive_a_reopen_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, pending) = Spool::open(dir.path()).unwrap();
        assert!(pending.is_empty());
        let a = spool.append(&running("a"), &[]).unwrap();
        let b = spool.append(&chunk("a", 0), b"hello\n").unwrap();
        let c = spool.append(&chunk("b", 0), b"").unwrap();
        assert_eq!(spool.read(b).unwrap(), (chunk("a", 0), b"hello\n".to_vec()));
        spool.release(a).unwrap();
        drop(spool);

        let (spool, pending) = Spool::open(dir.path()).unwrap();
        let records: Vec<Record> = pending.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(records, vec![chunk("a", 0), chunk("b", 0)]);
        assert_eq!(pending[0].0, b);
        assert_eq!(spool.read(b).unwrap().1, b"hello\n");
        spool.release(b).unwrap();
        spool.release(c).unwrap();
        // The old segment is gone once empty; only the one being written stays.
        assert_eq!(spool.segment_count(), 1);
        drop(spool);
        let (_, pending) = Spool::open(dir.path()).unwrap();
        assert!(pending.is_empty());
    }

    #[test]
    fn full_segments_rotate_and_go_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path()).unwrap();
        let big = vec![7u8; 6 * 1024 * 1024];
        let locations: Vec<Location> =
            (0..8).map(|seq| spool.append(&chunk("a", seq), &big).unwrap()).collect();
        assert!(spool.segment_count() >= 3, "{}", spool.segment_count());
        for at in &locations {
            assert_eq!(spool.read(*at).unwrap().1.len(), big.len());
            spool.release(*at).unwrap();
        }
        // Everything released: only the segment being written is left.
        assert_eq!(spool.segment_count(), 1);
    }

    #[test]
    fn a_torn_tail_is_ignored_and_what_precedes_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path()).unwrap();
        spool.append(&chunk("a", 0), b"whole").unwrap();
        drop(spool);
        let path = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let torn = encode(&chunk("a", 1), b"cut short").unwrap();
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(&path, bytes).unwrap();

        let (spool, pending) = Spool::open(dir.path()).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(spool.read(pending[0].0).unwrap(), (chunk("a", 0), b"whole".to_vec()));
    }
}
