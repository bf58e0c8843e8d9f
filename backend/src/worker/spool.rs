//! The node's spool: an append-only log (`DATA_DIR/spool/<n>.log`) of what the node still
//! has to deliver to the primary — log chunks, status reports — and of the process groups of
//! its running jobs. Everything is written here before it is sent, and released (by a
//! `Released` record) once the primary has taken it, so a node restart loses nothing.
//!
//! A log of segments rather than a file per entry: creating and removing files for every
//! job costs the file system far more than the job (inode allocation dominated the jobs
//! benchmark). Segments are named by a 12-digit number; writing goes to the newest, and a
//! new one is started at `SEGMENT_BYTES` (16 MiB) and at every open. A segment is removed
//! once everything in it is released and a newer one is being written. Records are not
//! fsynced, so they survive a crash of the process, not of the machine.
//!
//! The format: a segment starts with `FILE_HEADER` (`FDSPOOL` and the format version, 1).
//! Each record is framed: `RECORD_MAGIC` (4 bytes), a CRC-32 of the rest of the record, the
//! lengths of header and data (two little-endian `u32`), a JSON header (a [`Record`]) and
//! the data (a chunk's bytes; empty otherwise).
//!
//! Damage costs only the damaged record. Reading a segment at open, a record whose marker,
//! lengths (over `MAX_HEADER` or `MAX_DATA`), checksum or header does not hold up is
//! skipped: reading goes on where its own lengths say it ends if an intact record (or the
//! segment's end) is there, else at the next marker that starts an intact record (a marker
//! inside job output fails its checksum). The skipped bytes are copied to
//! `spool/corrupt/<segment>-<offset>.bad` and logged; nothing reads that folder again. A
//! record cut off by the segment's end with nothing intact after it (a crash mid-write) is
//! only ignored. [`Spool::read`] checks the checksum again, so a record damaged later is an
//! error, never other bytes. Segments without the file header were written before the
//! framing and are read the old way: there, a bad record still ends its segment's reading.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::data_dir;
use crate::protocol::{ChunkParams, JobReport};

/// A segment is closed (and a new one started) once it holds this much.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// What a segment starts with: "FDSPOOL" and the format's version.
const FILE_HEADER: [u8; 8] = *b"FDSPOOL\x01";
/// What each record starts with; not text, so rare in job output, which is what records
/// mostly hold (a false match fails the checksum anyway).
const RECORD_MAGIC: [u8; 4] = [0xF5, 0xD8, 0x5C, 0xA7];
/// Marker, CRC-32, then the lengths of header and data (u32, little-endian); the CRC covers
/// the lengths, the header and the data.
const PREFIX: usize = 16;
/// Records of segments without a file header start with just the two lengths.
const LEGACY_PREFIX: usize = 8;
/// Far above any real header (a few hundred bytes) or chunk (at most 512 KiB): a length
/// beyond these is damage, not a record.
const MAX_HEADER: usize = 1024 * 1024;
const MAX_DATA: usize = 64 * 1024 * 1024;

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

/// How a segment's records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Written before the framing: lengths, header, data; nothing to check them by.
    Legacy,
    /// `FILE_HEADER`, then framed records.
    Framed,
}

#[derive(Debug, Clone)]
struct Segment {
    file: Arc<File>,
    format: Format,
}

struct Segments {
    active: u64,
    active_len: u64,
    writer: File,
    /// Every segment still on disk, for reading.
    files: HashMap<u64, Segment>,
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
    pub fn open(dir: &Path) -> anyhow::Result<(Spool, Vec<(Location, Record)>)> {
        data_dir::create_dir(dir)?;
        let mut ids = Vec::new();
        let listing = || format!("listing {}", dir.display());
        for entry in std::fs::read_dir(dir).with_context(listing)? {
            let name = entry.with_context(listing)?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut pending = BTreeMap::new();
        let mut files = HashMap::new();
        for &id in &ids {
            let path = segment_path(dir, id);
            let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let (format, records) =
                read_segment(&file, id, dir).with_context(|| format!("reading {}", path.display()))?;
            for (offset, record) in records {
                match record {
                    Record::Released { at } => {
                        pending.remove(&at);
                    }
                    record => {
                        pending.insert(Location { segment: id, offset }, record);
                    }
                }
            }
            files.insert(id, Segment { file: Arc::new(file), format });
        }
        let mut live: HashMap<u64, usize> = HashMap::new();
        for at in pending.keys() {
            *live.entry(at.segment).or_default() += 1;
        }
        // Segments with nothing left to deliver go now (copies of their bad bytes stay).
        for id in ids.iter().filter(|id| !live.contains_key(id)) {
            files.remove(id);
            let path = segment_path(dir, *id);
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        let active = ids.last().map_or(0, |id| id + 1);
        let creating = || format!("creating {}", segment_path(dir, active).display());
        let writer = create_segment(dir, active).with_context(creating)?;
        let reader = writer.try_clone().with_context(creating)?;
        files.insert(active, Segment { file: Arc::new(reader), format: Format::Framed });
        let segments = Segments { active, active_len: FILE_HEADER.len() as u64, writer, files, live };
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
        if let Err(e) = s.writer.write_all(&bytes) {
            // A partial write (disk full) must not shift where later records are thought to
            // start: cut it off, or at least count what reached the file.
            let active_len = s.active_len;
            if s.writer.set_len(active_len).is_err() {
                s.active_len = s.writer.metadata().map_or(active_len, |m| m.len());
            }
            return Err(e);
        }
        s.active_len += bytes.len() as u64;
        if !matches!(record, Record::Released { .. }) {
            *s.live.entry(at.segment).or_default() += 1;
        }
        Ok(at)
    }

    /// Reads back the record at `at`, with its data; damage since it was written is an
    /// error, never other bytes.
    pub fn read(&self, at: Location) -> io::Result<(Record, Vec<u8>)> {
        let segment = self.segments().files.get(&at.segment).cloned().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("spool segment {} is gone", at.segment))
        })?;
        let (file, offset) = (&segment.file, at.offset);
        let damaged = |why: Damage| {
            io::Error::new(io::ErrorKind::InvalidData, format!("spool record {at:?}: {}", why.describe()))
        };
        let (header, data) = match segment.format {
            Format::Framed => {
                let mut prefix = [0u8; PREFIX];
                file.read_exact_at(&mut prefix, offset)?;
                let frame = Frame::parse(&prefix).map_err(damaged)?;
                let mut body = vec![0u8; frame.header_len + frame.data_len];
                file.read_exact_at(&mut body, offset + PREFIX as u64)?;
                frame.verify(&body).map_err(damaged)?;
                let data = body.split_off(frame.header_len);
                (body, data)
            }
            Format::Legacy => {
                let mut prefix = [0u8; LEGACY_PREFIX];
                file.read_exact_at(&mut prefix, offset)?;
                let (header_len, data_len) = lengths(&prefix);
                if header_len > MAX_HEADER || data_len > MAX_DATA {
                    return Err(damaged(Damage::ImpossibleLengths));
                }
                let mut body = vec![0u8; header_len + data_len];
                file.read_exact_at(&mut body, offset + LEGACY_PREFIX as u64)?;
                let data = body.split_off(header_len);
                (body, data)
            }
        };
        let record = serde_json::from_slice(&header).map_err(|_| damaged(Damage::UnreadableHeader))?;
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
        s.files.insert(next, Segment { file: Arc::new(s.writer.try_clone()?), format: Format::Framed });
        s.active = next;
        s.active_len = FILE_HEADER.len() as u64;
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

/// A new segment (mode 0600), its file header written.
fn create_segment(dir: &Path, id: u64) -> io::Result<File> {
    let mut file =
        data_dir::file_options().create(true).read(true).append(true).open(segment_path(dir, id))?;
    file.write_all(&FILE_HEADER)?;
    Ok(file)
}

fn encode(record: &Record, data: &[u8]) -> io::Result<Vec<u8>> {
    let header = serde_json::to_vec(record).map_err(io::Error::other)?;
    let length = |len: usize, max: usize| {
        u32::try_from(len)
            .ok()
            .filter(|_| len <= max)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "spool record too large"))
    };
    let (header_len, data_len) = (length(header.len(), MAX_HEADER)?, length(data.len(), MAX_DATA)?);
    let mut bytes = Vec::with_capacity(PREFIX + header.len() + data.len());
    bytes.extend_from_slice(&RECORD_MAGIC);
    // The checksum's place, filled in once everything it covers is there.
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&header_len.to_le_bytes());
    bytes.extend_from_slice(&data_len.to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
    let crc = crc32fast::hash(&bytes[8..]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

/// Why bytes are not a whole, intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// The segment ends before the record does: a crash mid-write, if nothing follows.
    Torn,
    BadMagic,
    ImpossibleLengths,
    ChecksumMismatch,
    UnreadableHeader,
}

impl Damage {
    fn describe(self) -> &'static str {
        match self {
            Damage::Torn => "cut off by the end of the segment",
            Damage::BadMagic => "no record marker",
            Damage::ImpossibleLengths => "impossible lengths",
            Damage::ChecksumMismatch => "checksum mismatch",
            Damage::UnreadableHeader => "unreadable header",
        }
    }
}

/// A framed record's prefix, its marker and lengths checked.
struct Frame {
    crc: u32,
    lengths: [u8; 8],
    header_len: usize,
    data_len: usize,
}

impl Frame {
    fn parse(prefix: &[u8; PREFIX]) -> Result<Frame, Damage> {
        let [m0, m1, m2, m3, c0, c1, c2, c3, l0, l1, l2, l3, l4, l5, l6, l7] = *prefix;
        if [m0, m1, m2, m3] != RECORD_MAGIC {
            return Err(Damage::BadMagic);
        }
        let (header_len, data_len) = lengths(&[l0, l1, l2, l3, l4, l5, l6, l7]);
        if header_len > MAX_HEADER || data_len > MAX_DATA {
            return Err(Damage::ImpossibleLengths);
        }
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        Ok(Frame { crc, lengths: [l0, l1, l2, l3, l4, l5, l6, l7], header_len, data_len })
    }

    fn len(&self) -> usize {
        PREFIX + self.header_len + self.data_len
    }

    /// Checks header and data (`body`) against the checksum.
    fn verify(&self, body: &[u8]) -> Result<(), Damage> {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&self.lengths);
        hasher.update(body);
        if hasher.finalize() == self.crc { Ok(()) } else { Err(Damage::ChecksumMismatch) }
    }
}

/// The two little-endian `u32` lengths (header, data) of a record's prefix.
fn lengths(prefix: &[u8; LEGACY_PREFIX]) -> (usize, usize) {
    let [a, b, c, d, e, f, g, h] = *prefix;
    let header = u32::from_le_bytes([a, b, c, d]);
    let data = u32::from_le_bytes([e, f, g, h]);
    (usize::try_from(header).unwrap_or(usize::MAX), usize::try_from(data).unwrap_or(usize::MAX))
}

/// Every intact record of a segment, with its offset; `spool` is where damage is set aside.
fn read_segment(file: &File, id: u64, spool: &Path) -> io::Result<(Format, Vec<(u64, Record)>)> {
    let mut bytes = Vec::new();
    (&*file).read_to_end(&mut bytes)?;
    if bytes.len() < FILE_HEADER.len() && FILE_HEADER.starts_with(&bytes) {
        // Created, and the process died before even the file header was written.
        return Ok((Format::Framed, Vec::new()));
    }
    if !bytes.starts_with(&FILE_HEADER) {
        return Ok((Format::Legacy, read_legacy(&bytes, id)));
    }
    let mut records = Vec::new();
    let mut offset = FILE_HEADER.len();
    while offset < bytes.len() {
        let damage = match record_at(&bytes, offset) {
            Ok((record, end)) => {
                records.push((offset as u64, record));
                offset = end;
                continue;
            }
            Err(damage) => damage,
        };
        match resume_after(&bytes, offset) {
            None if damage == Damage::Torn => {
                tracing::warn!(
                    segment = %segment_path(spool, id).display(),
                    offset,
                    "torn record at the end of a spool segment (a crash mid-write); ignoring it"
                );
                break;
            }
            resume => {
                let end = resume.unwrap_or(bytes.len());
                set_aside(spool, id, offset, &bytes[offset..end], damage);
                offset = end;
            }
        }
    }
    Ok((Format::Framed, records))
}

/// The framed record at `offset` and where it ends, if it is whole and intact.
fn record_at(bytes: &[u8], offset: usize) -> Result<(Record, usize), Damage> {
    let rest = &bytes[offset..];
    let Some(prefix) = rest.first_chunk::<PREFIX>() else {
        return Err(if RECORD_MAGIC.starts_with(&rest[..rest.len().min(4)]) {
            Damage::Torn
        } else {
            Damage::BadMagic
        });
    };
    let frame = Frame::parse(prefix)?;
    let body = rest.get(PREFIX..frame.len()).ok_or(Damage::Torn)?;
    frame.verify(body)?;
    let record = serde_json::from_slice(&body[..frame.header_len]).map_err(|_| Damage::UnreadableHeader)?;
    Ok((record, offset + frame.len()))
}

/// Where reading goes on after a bad record at `offset`: where its own lengths say it ends,
/// if an intact record (or the segment's end) is there, else at the next marker that starts
/// an intact record. `None`: no intact record follows.
fn resume_after(bytes: &[u8], offset: usize) -> Option<usize> {
    let claimed = bytes[offset..]
        .first_chunk::<PREFIX>()
        .and_then(|prefix| Frame::parse(prefix).ok())
        .map(|frame| offset + frame.len())
        .filter(|&end| end <= bytes.len());
    if let Some(end) = claimed
        && (end == bytes.len() || record_at(bytes, end).is_ok())
    {
        return Some(end);
    }
    let mut from = offset + 1;
    while let Some(found) = bytes.get(from..)?.windows(RECORD_MAGIC.len()).position(|w| w == RECORD_MAGIC) {
        let candidate = from + found;
        if record_at(bytes, candidate).is_ok() {
            return Some(candidate);
        }
        from = candidate + 1;
    }
    None
}

/// Keeps damaged bytes for inspection, in `spool/corrupt/<segment>-<offset>.bad`, and says so.
fn set_aside(spool: &Path, id: u64, offset: usize, bad: &[u8], damage: Damage) {
    let dir = spool.join("corrupt");
    let copy = dir.join(format!("{id:012}-{offset}.bad"));
    let kept = data_dir::create_dir(&dir).map_err(io::Error::other).and_then(|()| {
        data_dir::file_options().write(true).create(true).truncate(true).open(&copy)?.write_all(bad)
    });
    let segment = segment_path(spool, id);
    match kept {
        Ok(()) => tracing::warn!(
            segment = %segment.display(),
            offset,
            bytes = bad.len(),
            reason = damage.describe(),
            copy = %copy.display(),
            "corrupt spool record skipped; its bytes are kept for inspection, the records around it are delivered"
        ),
        Err(e) => tracing::warn!(
            segment = %segment.display(),
            offset,
            bytes = bad.len(),
            reason = damage.describe(),
            error = %e,
            "corrupt spool record skipped (and its bytes could not be copied aside); the records around it are delivered"
        ),
    }
}

/// Every whole record of a segment written before the framing; with nothing to check
/// records by, a torn or unreadable record ends it.
fn read_legacy(bytes: &[u8], id: u64) -> Vec<(u64, Record)> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    while let Some(prefix) = bytes.get(offset..).and_then(<[u8]>::first_chunk::<LEGACY_PREFIX>) {
        let (header_len, data_len) = lengths(prefix);
        let header_end = (offset + LEGACY_PREFIX).saturating_add(header_len);
        let end = header_end.saturating_add(data_len);
        if end > bytes.len() {
            break;
        }
        match serde_json::from_slice(&bytes[offset + LEGACY_PREFIX..header_end]) {
            Ok(record) => records.push((offset as u64, record)),
            Err(e) => {
                tracing::warn!(segment = id, offset, error = %e, "unreadable record in a spool segment of the previous format; ignoring the rest of it");
                return records;
            }
        }
        offset = end;
    }
    if offset < bytes.len() {
        tracing::warn!(
            segment = id,
            offset,
            "torn record at the end of a spool segment (a crash mid-write); ignoring it"
        );
    }
    records
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
        let torn = encode(&chunk("a", 1), b"cut short").unwrap();
        // Cut in the data, in the header, in the prefix.
        for kept in [torn.len() - 3, PREFIX + 2, 6] {
            let dir = tempfile::tempdir().unwrap();
            let (spool, _) = Spool::open(dir.path()).unwrap();
            spool.append(&chunk("a", 0), b"whole").unwrap();
            drop(spool);
            let path = segment_path(dir.path(), 0);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(&torn[..kept]);
            std::fs::write(&path, bytes).unwrap();

            let (spool, pending) = Spool::open(dir.path()).unwrap();
            assert_eq!(pending.len(), 1);
            assert_eq!(spool.read(pending[0].0).unwrap(), (chunk("a", 0), b"whole".to_vec()));
            // A crash mid-write is not corruption: nothing is set aside for it.
            assert!(corrupt_copies(dir.path()).is_empty());
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack.windows(needle.len()).position(|w| w == needle).expect("bytes to damage")
    }

    fn corrupt_copies(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let Ok(entries) = std::fs::read_dir(dir.join("corrupt")) else { return Vec::new() };
        let mut copies: Vec<(String, Vec<u8>)> = entries
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        copies.sort();
        copies
    }

    /// Writes records around a middle one (`chunk("a", 2)`, data `MIDDLE`), lets `damage`
    /// change the segment's bytes given where the middle record's header starts, and
    /// reopens: the replayed records must be every good one, before and after it.
    fn reopen_with_damaged_middle(damage: impl FnOnce(&mut Vec<u8>, usize)) -> tempfile::TempDir {
        const MIDDLE: &[u8] = b"the middle record's own output\n";
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path()).unwrap();
        let released_before = spool.append(&chunk("x", 0), b"delivered").unwrap();
        spool.release(released_before).unwrap();
        spool.append(&running("a"), &[]).unwrap();
        spool.append(&chunk("a", 0), b"zero\n").unwrap();
        spool.append(&chunk("a", 1), b"one\n").unwrap();
        spool.append(&chunk("a", 2), MIDDLE).unwrap();
        let released_after = spool.append(&chunk("y", 0), b"delivered too").unwrap();
        spool.append(&chunk("a", 3), b"three\n").unwrap();
        spool.release(released_after).unwrap();
        spool.append(&chunk("a", 4), b"four\n").unwrap();
        drop(spool);

        let path = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let data_at = find(&bytes, MIDDLE);
        let header = serde_json::to_vec(&chunk("a", 2)).unwrap();
        let header_at = data_at - header.len();
        assert_eq!(&bytes[header_at..data_at], header.as_slice());
        damage(&mut bytes, header_at);
        std::fs::write(&path, bytes).unwrap();

        let (spool, pending) = Spool::open(dir.path()).unwrap();
        let replayed: Vec<(Record, Vec<u8>)> =
            pending.iter().map(|(at, _)| spool.read(*at).unwrap()).collect();
        let expected = vec![
            (running("a"), Vec::new()),
            (chunk("a", 0), b"zero\n".to_vec()),
            (chunk("a", 1), b"one\n".to_vec()),
            (chunk("a", 3), b"three\n".to_vec()),
            (chunk("a", 4), b"four\n".to_vec()),
        ];
        assert_eq!(replayed, expected);
        let copies = corrupt_copies(dir.path());
        assert_eq!(
            copies.len(),
            1,
            "one region set aside: {:?}",
            copies.iter().map(|c| &c.0).collect::<Vec<_>>()
        );
        let (name, copy) = &copies[0];
        assert!(name.starts_with("000000000000-") && name.ends_with(".bad"), "{name}");
        assert!(find(copy, &MIDDLE[4..]) > 0, "the copy holds the bad record");
        assert!(copy.windows(5).all(|w| w != b"three"), "and nothing of the good ones after it");
        // Job output: for this user's eyes only.
        let mode =
            |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
        let corrupt = dir.path().join("corrupt");
        assert_eq!(mode(&corrupt) & 0o777, 0o700);
        assert_eq!(mode(&corrupt.join(name)) & 0o777, 0o600);
        assert_eq!(mode(&path) & 0o777, 0o600);

        // The damaged segment stays while its good records are undelivered, and goes with
        // the last of them; the copy of the bad bytes stays for inspection.
        for (at, _) in &pending {
            assert!(path.exists());
            spool.release(*at).unwrap();
        }
        assert!(!path.exists());
        assert_eq!(corrupt_copies(dir.path()).len(), 1);
        dir
    }

    #[test]
    fn a_record_with_a_damaged_header_costs_only_itself() {
        // `{"kind"` becomes `{"kinx"`: the header no longer parses.
        reopen_with_damaged_middle(|bytes, header_at| bytes[header_at + 5] ^= 0x1c);
    }

    #[test]
    fn a_record_with_damaged_data_costs_only_itself() {
        reopen_with_damaged_middle(|bytes, header_at| {
            let data_at = header_at + serde_json::to_vec(&chunk("a", 2)).unwrap().len();
            bytes[data_at + 3] ^= 0x01;
        });
    }

    #[test]
    fn a_record_with_a_damaged_length_costs_only_itself() {
        // The two lengths are the eight bytes before the header: the header one off by one…
        reopen_with_damaged_middle(|bytes, header_at| bytes[header_at - 8] ^= 0x01);
        // …the data one off by a little, pointing into the next record…
        reopen_with_damaged_middle(|bytes, header_at| bytes[header_at - 4] ^= 0x04);
        // …or far beyond the end of the segment.
        reopen_with_damaged_middle(|bytes, header_at| bytes[header_at - 1] ^= 0x40);
    }

    #[test]
    fn reading_a_record_damaged_since_it_was_written_is_an_error_not_wrong_data() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path()).unwrap();
        let at = spool.append(&chunk("a", 0), b"exactly this").unwrap();
        let path = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let data_at = find(&bytes, b"exactly this");
        bytes[data_at] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
        assert!(spool.read(at).is_err());
    }

    /// A record as versions before the framing wrote them: two lengths, header, data.
    fn legacy_record(record: &Record, data: &[u8]) -> Vec<u8> {
        let header = serde_json::to_vec(record).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn a_segment_left_by_the_previous_version_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = legacy_record(&chunk("a", 0), b"from before the upgrade");
        let delivered_at = u64::try_from(old.len()).unwrap();
        old.extend(legacy_record(&chunk("a", 1), b"delivered"));
        old.extend(legacy_record(
            &Record::Released { at: Location { segment: 0, offset: delivered_at } },
            &[],
        ));
        old.extend(legacy_record(&chunk("a", 2), b"also undelivered"));
        std::fs::write(segment_path(dir.path(), 0), old).unwrap();

        let (spool, pending) = Spool::open(dir.path()).unwrap();
        let replayed: Vec<(Record, Vec<u8>)> =
            pending.iter().map(|(at, _)| spool.read(*at).unwrap()).collect();
        assert_eq!(
            replayed,
            vec![
                (chunk("a", 0), b"from before the upgrade".to_vec()),
                (chunk("a", 2), b"also undelivered".to_vec())
            ]
        );
        // New records go to a new segment, next to the old one; both are read at the next start.
        let new = spool.append(&chunk("a", 3), b"after the upgrade").unwrap();
        spool.release(pending[0].0).unwrap();
        drop(spool);
        let (spool, pending) = Spool::open(dir.path()).unwrap();
        assert_eq!(pending.iter().map(|(at, _)| *at).collect::<Vec<_>>()[1], new);
        assert_eq!(spool.read(new).unwrap().1, b"after the upgrade");
        assert_eq!(spool.read(pending[0].0).unwrap().1, b"also undelivered");
    }
}
