package audit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

// The trail's life cycle: Redis holds the hot window (PIIVAULT_AUDIT_HOT);
// older entries move to sealed segment files in the archive directory
// (PIIVAULT_AUDIT_ARCHIVE), and whole segments older than
// PIIVAULT_AUDIT_KEEP are deleted, the deletion itself an entry.
//
// A segment is JSON lines: a header, then its entries exactly as the
// stream held them (with their stream ids). The header names the first
// entry's prev and the last entry's hash and is sealed by Vault like an
// entry, so a segment can neither be edited, cut, swapped nor forged
// without Verify saying which:
//
//	audit-<first seq, 12 digits>-<last seq, 12 digits>.jsonl
//	{"format":"piivault-audit-segment/1","first_seq":…,"last_seq":…,"first_prev":…,"last_hash":…,
//	 "first_time":…,"last_time":…,"count":…,"seal":"vault:v1:…"}
//	{"id":"<stream id>","seq":…,"time":…,"actor":…,"action":…,…,"prev":…,"hash":…,"seal":…}
//	…
//
// A segment is written to a temporary name, fsynced, renamed and the
// directory fsynced; only then are its entries trimmed from the stream
// (XTRIM MINID). A crash leaves either the entries in Redis, or the segment
// on disk and the entries in Redis (the next run sees the segment and only
// trims), never neither.

// SegmentFormat is the format line of every segment header.
const SegmentFormat = "piivault-audit-segment/1"

// SegmentEntries bounds the entries of one segment.
const SegmentEntries = 10_000

var segmentName = regexp.MustCompile(`^audit-(\d{12})-(\d{12})\.jsonl$`)

// SegmentHeader is a segment's first line.
type SegmentHeader struct {
	Format    string    `json:"format"`
	FirstSeq  int64     `json:"first_seq"`
	LastSeq   int64     `json:"last_seq"`
	FirstPrev string    `json:"first_prev"`
	LastHash  string    `json:"last_hash"`
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
	Count     int       `json:"count"`
	Seal      string    `json:"seal"`
}

// digest is what the header's seal covers: every field but the seal.
func (h SegmentHeader) digest() string {
	s := fmt.Sprintf("format=%s\nfirst_seq=%d\nlast_seq=%d\nfirst_prev=%s\nlast_hash=%s\nfirst_time=%s\nlast_time=%s\ncount=%d\n",
		h.Format, h.FirstSeq, h.LastSeq, h.FirstPrev, h.LastHash,
		h.FirstTime.UTC().Format(time.RFC3339Nano), h.LastTime.UTC().Format(time.RFC3339Nano), h.Count)
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// WithArchive keeps sealed segments of the trail in dir (Archive, Verify,
// Each and DeleteSegments read and write them there).
func WithArchive(dir string) Option {
	return func(l *Log) { l.archive = dir }
}

// segmentFile is a segment as its name says.
type segmentFile struct {
	name            string
	first, last     int64
	header          SegmentHeader
	headerReadError error
}

func segmentFileName(first, last int64) string {
	return fmt.Sprintf("audit-%012d-%012d.jsonl", first, last)
}

// segments lists the archive's segments by first seq, headers read.
func (l *Log) segments() ([]segmentFile, error) {
	if l.archive == "" {
		return nil, nil
	}
	des, err := os.ReadDir(l.archive)
	if err != nil {
		return nil, fmt.Errorf("audit archive %s: %w", l.archive, err)
	}
	var out []segmentFile
	for _, de := range des {
		m := segmentName.FindStringSubmatch(de.Name())
		if m == nil || !de.Type().IsRegular() {
			continue
		}
		first, _ := strconv.ParseInt(m[1], 10, 64)
		last, _ := strconv.ParseInt(m[2], 10, 64)
		sf := segmentFile{name: de.Name(), first: first, last: last}
		sf.header, sf.headerReadError = readHeader(filepath.Join(l.archive, de.Name()))
		out = append(out, sf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].first < out[j].first })
	return out, nil
}

func readHeader(path string) (SegmentHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return SegmentHeader{}, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 64<<10).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return SegmentHeader{}, fmt.Errorf("no header: %w", err)
	}
	var h SegmentHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Format != SegmentFormat {
		return SegmentHeader{}, errors.New("the header is not a segment header")
	}
	return h, nil
}

// eachSegmentEntry calls fn with a segment's entries in file order; a line
// that is not an entry is reported as errBadLine with its position.
func (l *Log) eachSegmentEntry(name string, fn func(i int, e Entry, err error) error) error {
	f, err := os.Open(filepath.Join(l.archive, name))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Scan() // the header
	for i := 0; sc.Scan(); i++ {
		var e Entry
		err := json.Unmarshal(sc.Bytes(), &e)
		if err := fn(i, e, err); err != nil {
			return err
		}
	}
	return sc.Err()
}

// ArchiveResult is what one archive run did.
type ArchiveResult struct {
	Segments int   `json:"segments"`
	Entries  int   `json:"entries"`
	Trimmed  int64 `json:"trimmed"`
}

// Archive moves the entries appended before cutoff from Redis into sealed
// segments (at most SegmentEntries each), then trims them from the stream.
// Entries already in a segment (a run that died before its trim) are only
// trimmed. Run it from one instance at a time (the scheduler's lease).
func (l *Log) Archive(ctx context.Context, cutoff time.Time) (ArchiveResult, error) {
	var res ArchiveResult
	if l.archive == "" {
		return res, errors.New("audit archive: no directory (PIIVAULT_AUDIT_ARCHIVE)")
	}
	segs, err := l.segments()
	if err != nil {
		return res, err
	}
	archivedSeq, archivedHash := int64(0), ""
	if n := len(segs); n > 0 {
		last := segs[n-1]
		if last.headerReadError != nil {
			return res, fmt.Errorf("audit archive: segment %s: %w (run audit verify)", last.name, last.headerReadError)
		}
		archivedSeq, archivedHash = last.header.LastSeq, last.header.LastHash
	}
	for {
		msgs, err := l.rdb.XRangeN(ctx, logKey, "-", "("+strconv.FormatInt(cutoff.UnixMilli(), 10), int64(l.segmentMax)).Result()
		if err != nil {
			return res, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
		}
		if len(msgs) == 0 {
			return res, nil
		}
		entries := make([]Entry, 0, len(msgs))
		trimTo := ""
		for _, m := range msgs {
			e, err := decode(m)
			if err != nil {
				return res, fmt.Errorf("audit archive: entry %s: %w (run audit verify)", m.ID, err)
			}
			if e.Seq <= archivedSeq {
				// On disk already: a run that died before its trim.
				if e.Seq == archivedSeq && e.Hash != archivedHash {
					return res, fmt.Errorf("audit archive: entry %d in Redis is not the one in the archive (run audit verify)", e.Seq)
				}
				trimTo = m.ID
				continue
			}
			entries = append(entries, e)
			trimTo = m.ID
		}
		if len(entries) > 0 {
			if err := l.writeSegment(ctx, entries); err != nil {
				return res, err
			}
			res.Segments++
			res.Entries += len(entries)
			archivedSeq, archivedHash = entries[len(entries)-1].Seq, entries[len(entries)-1].Hash
		}
		n, err := l.rdb.XTrimMinID(ctx, logKey, nextStreamID(trimTo)).Result()
		if err != nil {
			return res, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
		}
		res.Trimmed += n
	}
}

// nextStreamID is the smallest stream id after id ("<ms>-<seq>").
func nextStreamID(id string) string {
	ms, seq, _ := cutID(id)
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq+1, 10)
}

func cutID(id string) (uint64, uint64, bool) {
	a, b, ok := strings.Cut(id, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, ok && err1 == nil && err2 == nil
}

// writeSegment seals and writes entries (consecutive, in order) as one
// segment: a temporary file, fsynced, renamed, and the directory fsynced.
func (l *Log) writeSegment(ctx context.Context, entries []Entry) error {
	first, last := entries[0], entries[len(entries)-1]
	h := SegmentHeader{Format: SegmentFormat, FirstSeq: first.Seq, LastSeq: last.Seq, FirstPrev: first.Prev,
		LastHash: last.Hash, FirstTime: first.Time, LastTime: last.Time, Count: len(entries)}
	seals, err := l.sealer.Seal(ctx, [][]byte{[]byte(h.digest())})
	if err != nil {
		return fmt.Errorf("seal audit segment: %w", err)
	}
	if seals[0].Err != nil {
		return fmt.Errorf("seal audit segment: %w", seals[0].Err)
	}
	h.Seal = seals[0].Value
	tmp, err := os.CreateTemp(l.archive, ".segment-*.tmp")
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		tmp.Close()
		return err
	}
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("audit archive: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("audit archive: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	// Linked, not renamed over: a segment is written once. If the name is
	// taken (two archivers raced past the lease), the one there must be
	// this very segment.
	final := filepath.Join(l.archive, segmentFileName(h.FirstSeq, h.LastSeq))
	if err := os.Link(tmp.Name(), final); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("audit archive: %w", err)
		}
		there, rerr := readHeader(final)
		if rerr != nil || there != h {
			return fmt.Errorf("audit archive: %s exists and is not this segment (run audit verify)", final)
		}
	}
	return syncDir(l.archive)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit archive: fsync directory: %w", err)
	}
	return nil
}

// DeleteSegments deletes the oldest segments whose newest entry is older
// than cutoff (a prefix of the archive: the trail's beginning moves, it is
// never holed), after recording the deletion: an entry naming the last
// deleted entry's seq and hash, which Verify takes as where the trail now
// legitimately begins. It returns how many it deleted.
func (l *Log) DeleteSegments(ctx context.Context, cutoff time.Time) (int, error) {
	segs, err := l.segments()
	if err != nil {
		return 0, err
	}
	var due []segmentFile
	for _, s := range segs {
		if s.headerReadError != nil || !s.header.LastTime.Before(cutoff) {
			break
		}
		due = append(due, s)
	}
	if len(due) == 0 {
		return 0, nil
	}
	first, last := due[0].header, due[len(due)-1].header
	// The event id is the deleted range's: a run that dies after recording
	// and before deleting records it once however often it runs again.
	if err := l.Record(ctx, Entry{Actor: "system", Action: ActionAuditSegmentsDeleted, Event: "segdel-" + last.LastHash,
		Detail: map[string]string{"first_seq": strconv.FormatInt(first.FirstSeq, 10),
			"last_seq": strconv.FormatInt(last.LastSeq, 10), "last_hash": last.LastHash,
			"segments": strconv.Itoa(len(due)), "reason": "older than PIIVAULT_AUDIT_KEEP"}}); err != nil {
		return 0, err
	}
	for _, s := range due {
		if err := os.Remove(filepath.Join(l.archive, s.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("audit archive: %w", err)
		}
	}
	return len(due), syncDir(l.archive)
}

// HotStart is the time of the oldest entry still in Redis (zero when the
// stream is empty): older entries are in the archive.
func (l *Log) HotStart(ctx context.Context) (time.Time, error) {
	msgs, err := l.rdb.XRangeN(ctx, logKey, "-", "+", 1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return time.Time{}, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	if len(msgs) == 0 {
		return time.Time{}, nil
	}
	e, err := decode(msgs[0])
	if err != nil {
		return time.Time{}, err
	}
	return e.Time, nil
}

// ArchiveStats are the archive's figures for the metrics.
type ArchiveStats struct {
	HotEntries int64
	Segments   int
}

// Stats counts the entries in Redis and the segments on disk.
func (l *Log) Stats(ctx context.Context) (ArchiveStats, error) {
	n, err := l.Length(ctx)
	if err != nil {
		return ArchiveStats{}, err
	}
	segs, err := l.segments()
	return ArchiveStats{HotEntries: n, Segments: len(segs)}, err
}

// LifeCycle is one run of the trail's life cycle at now: entries older
// than hot move to segments, segments older than keep are deleted (with
// their record), and the metrics are refreshed. The scheduler runs it
// under its lease; `piivault audit archive` runs it by hand.
func (l *Log) LifeCycle(ctx context.Context, now time.Time, hot, keep time.Duration) (ArchiveResult, int, error) {
	res, err := l.Archive(ctx, now.Add(-hot))
	if err != nil {
		return res, 0, err
	}
	deleted, err := l.DeleteSegments(ctx, now.Add(-keep))
	if err != nil {
		return res, deleted, err
	}
	archiveLastSuccess.Set(float64(now.Unix()))
	if st, err := l.Stats(ctx); err == nil {
		hotEntries.Set(float64(st.HotEntries))
		segmentsOnDisk.Set(float64(st.Segments))
	}
	return res, deleted, nil
}
