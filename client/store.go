package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vigilmq/vigil/packet"
)

// Store persists outbound QoS 1 and 2 messages until they are
// acknowledged, so that a device that restarts sends them again. Records
// are opaque to the Store. Implementations must be safe for concurrent
// use.
type Store interface {
	// Put saves or replaces the record with key seq. It must be durable
	// when it returns.
	Put(seq uint64, rec []byte) error
	// Delete removes a record; a missing one is not an error. It need not
	// be durable at once: a record that reappears after a crash only
	// causes a duplicate delivery.
	Delete(seq uint64) error
	// Load returns every record, in ascending seq order.
	Load() ([]Record, error)
}

// Record is one stored message.
type Record struct {
	Seq  uint64
	Data []byte
}

// FileStore is a Store with one file per message in a directory. Put
// writes a temporary file, fsyncs it, renames it into place and fsyncs the
// directory, so a record is either wholly there or absent after a crash.
//
// Guarantees, with Config.Store set to a FileStore:
//   - Publish and PublishAsync return only after the message is on disk;
//   - a QoS 2 message's packet identifier is on disk before the PUBLISH
//     is sent, and its PUBREL stage before the PUBREL is sent, so a
//     restarted client resumes the exchange where it was;
//   - a record is deleted when the server acknowledges the message. A
//     crash in between means the message is sent again: at least once,
//     never lost.
//
// Each stored message costs one synced write (QoS 1) or three (QoS 2):
// expect hundreds, not tens of thousands, of messages per second. QoS 0
// messages are never stored.
type FileStore struct {
	dir string
}

// NewFileStore returns a FileStore in dir, creating it if needed. Only one
// client may use a directory at a time.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("client: file store: %w", err)
	}
	return &FileStore{dir: dir}, nil
}

const storeExt = ".msg"

func (fs *FileStore) path(seq uint64) string {
	return filepath.Join(fs.dir, fmt.Sprintf("%016x%s", seq, storeExt))
}

// Put implements Store.
func (fs *FileStore) Put(seq uint64, rec []byte) error {
	final := fs.path(seq)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("client: file store: %w", err)
	}
	_, err = f.Write(rec)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(fs.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("client: file store: put %d: %w", seq, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Delete implements Store.
func (fs *FileStore) Delete(seq uint64) error {
	err := os.Remove(fs.path(seq))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("client: file store: delete %d: %w", seq, err)
	}
	return nil
}

// Load implements Store. Leftover temporary files (a crash during Put) are
// removed.
func (fs *FileStore) Load() ([]Record, error) {
	ents, err := os.ReadDir(fs.dir)
	if err != nil {
		return nil, fmt.Errorf("client: file store: %w", err)
	}
	var recs []Record
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(fs.dir, name))
			continue
		}
		hex, ok := strings.CutSuffix(name, storeExt)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(fs.dir, name))
		if err != nil {
			return nil, fmt.Errorf("client: file store: %w", err)
		}
		recs = append(recs, Record{Seq: seq, Data: data})
	}
	slices.SortFunc(recs, func(a, b Record) int { return cmpSeq(a.Seq, b.Seq) })
	return recs, nil
}

// A record: format byte (1), stage, packet identifier (2 bytes), then the
// PUBLISH encoded as MQTT 5.0 so that properties survive whatever the
// connection's version.
const recordFormat = 1

func encodeRecord(op *pubOp, _ packet.Version) ([]byte, error) {
	p := *op.pkt
	p.Version = packet.V5
	p.Dup = false
	p.PacketID = 0
	if p.QoS > 0 {
		p.PacketID = 1 // placeholder: the real one is in the header
	}
	b := []byte{recordFormat, byte(op.stage), 0, 0}
	binary.BigEndian.PutUint16(b[2:], op.id)
	return p.Append(b)
}

func decodeRecord(data []byte) (*packet.Publish, stage, uint16, error) {
	if len(data) < 4 || data[0] != recordFormat || data[1] > byte(stageReleased) {
		return nil, 0, 0, errors.New("unknown record format")
	}
	st, id := stage(data[1]), binary.BigEndian.Uint16(data[2:])
	p, n, err := packet.DecodeBytes(data[4:], packet.V5)
	if err != nil {
		return nil, 0, 0, err
	}
	pub, ok := p.(*packet.Publish)
	if !ok || n != len(data)-4 {
		return nil, 0, 0, errors.New("record is not one PUBLISH")
	}
	pub = pub.Clone()
	pub.PacketID = 0
	return pub, st, id, nil
}

// loadStore queues the messages a previous process left behind. Those that
// had a packet identifier go back in flight, to be resent with it if the
// server resumes the session.
func (c *Client) loadStore() error {
	recs, err := c.s.Store.Load()
	if err != nil {
		return err
	}
	sess := c.sess
	for _, r := range recs {
		pkt, st, id, err := decodeRecord(r.Data)
		if err != nil {
			c.log.Warn("store: skipping unreadable record", "seq", r.Seq, "err", err)
			continue
		}
		op := &pubOp{seq: r.Seq, pkt: pkt, stage: st, id: id, stored: true, done: make(chan struct{})}
		sess.nextSeq = max(sess.nextSeq, r.Seq)
		sess.pending++
		if st != stageQueued && id != 0 && sess.inflight[id] == nil {
			sess.inflight[id] = op
			continue
		}
		op.stage, op.id = stageQueued, 0
		sess.queue = append(sess.queue, op)
	}
	if len(recs) > 0 {
		c.log.Info("store: loaded unacknowledged messages", "count", len(recs))
	}
	return nil
}
