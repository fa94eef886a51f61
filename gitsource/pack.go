package gitsource

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/zlib"
	"context"
	"crypto/sha1" //nolint:gosec // the pack trailer is SHA-1 by the format's definition
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/go-git/go-billy/v5"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// Packs of certops' own commits.
//
// A commit certops writes brings a known set of new objects: the blobs it
// changes, the trees on their paths and the commit itself (treeBuilder).
// They are encoded once, as a packfile without deltas, when the commit is
// written; the same bytes go into the local object store and, at Push,
// to the remote. go-git's own push would instead walk the remote tip's
// whole history to find what the remote lacks (a cost that grows with
// every commit), then read every object back and compress it again.
//
// Objects are compressed at zlib's BestSpeed: most of what certops commits
// is SOPS ciphertext in base64, which the higher levels shrink by about
// the same amount at several times the cost.

const (
	packHeaderLen  = 12 // "PACK", version, object count
	packTrailerLen = 20 // SHA-1 of everything before it
	// maxHeldPacks bounds the pack bytes held for unpushed commits (a
	// remote that refuses pushes for long). Past it, commits are still
	// written, and Push falls back to go-git's object walk for them.
	maxHeldPacks = 64 << 20
)

// packEntry locates one object in a pack, for the pack's index.
type packEntry struct {
	hash   plumbing.Hash
	offset uint64
	crc    uint32 // CRC-32 of the entry as stored: header and compressed data
}

// encodedPack is what the index of a pack needs, and the pack's size.
type encodedPack struct {
	entries []packEntry
	sum     plumbing.Hash // the trailer, which also names the pack
	size    int64
}

// packWriter passes a pack through to w, keeping its SHA-1 trailer, the
// CRC-32 of the entry being written and the offset.
type packWriter struct {
	w   io.Writer
	sum hash.Hash
	crc hash.Hash32
	n   uint64
}

func (p *packWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.sum.Write(b[:n])
	p.crc.Write(b[:n])
	p.n += uint64(n)
	return n, err
}

// encodePack writes a version 2 packfile holding objs whole (no deltas) to
// w. Written as it is encoded, a large pack is never held in memory: at
// 10,000 certificates a batch's pack is a few MiB, which the process held
// at its peak alongside the batch it was made from.
func encodePack(w io.Writer, objs []plumbing.EncodedObject) (*encodedPack, error) {
	pw := &packWriter{w: w, sum: sha1.New(), crc: crc32.NewIEEE()} //nolint:gosec // see the import
	if _, err := pw.Write(appendPackHeader(nil, uint32(len(objs)))); err != nil {
		return nil, err
	}
	zw, _ := zlib.NewWriterLevel(pw, zlib.BestSpeed)
	entries := make([]packEntry, len(objs))
	var hdr [binary.MaxVarintLen64]byte
	for i, o := range objs {
		start := pw.n
		pw.crc.Reset()
		if _, err := pw.Write(hdr[:packEntryHeader(hdr[:], o.Type(), o.Size())]); err != nil {
			return nil, err
		}
		rd, err := o.Reader()
		if err != nil {
			return nil, err
		}
		zw.Reset(pw)
		_, err = io.Copy(zw, rd)
		rd.Close()
		if err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		entries[i] = packEntry{hash: o.Hash(), offset: start, crc: pw.crc.Sum32()}
	}
	p := &encodedPack{entries: entries}
	copy(p.sum[:], pw.sum.Sum(nil))
	if _, err := w.Write(p.sum[:]); err != nil {
		return nil, err
	}
	p.size = int64(pw.n) + packTrailerLen
	return p, nil
}

// encodePackBytes is encodePack into memory.
func encodePackBytes(objs []plumbing.EncodedObject) ([]byte, error) {
	// Sized for the objects as they are: encrypted files barely compress,
	// and a buffer grown by doubling would reach twice the pack.
	size := packHeaderLen + packTrailerLen
	for _, o := range objs {
		size += binary.MaxVarintLen64 + int(o.Size()) + 16
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := encodePack(buf, objs); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// packStore is object storage that keeps packs as files under
// objects/pack, as go-git's filesystem storage does.
type packStore interface {
	Filesystem() billy.Filesystem
	Reindex()
}

// writePack encodes objs as a pack straight into s, with its index. The
// pack goes to a temporary file as it is encoded; the index is then
// written to a temporary file too, and both are renamed into place, the
// index first. go-git finds packs by their .pack file and the git CLI by
// their .idx, so neither sees a pack whose other half is missing, even
// after a crash between the two renames. go-git's own PackfileWriter would
// instead parse the pack again to build the index: inflate and hash every
// object certops just deflated and hashed. It returns the pack file's name
// in s's filesystem and its size.
func writePack(s packStore, objs []plumbing.EncodedObject) (file string, size int64, err error) {
	fs := s.Filesystem()
	dir := fs.Join("objects", "pack")
	tmp, err := fs.TempFile(dir, "tmp_pack_")
	if err != nil {
		return "", 0, err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = fs.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	p, err := encodePack(bw, objs)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	var w idxfile.Writer
	_ = w.OnHeader(uint32(len(p.entries)))
	for _, e := range p.entries {
		w.Add(e.hash, e.offset, e.crc)
	}
	if err := w.OnFooter(p.sum); err != nil {
		return "", 0, err
	}
	idx, err := w.Index()
	if err != nil {
		return "", 0, err
	}
	var ib bytes.Buffer
	if _, err := idxfile.NewEncoder(&ib).Encode(idx); err != nil {
		return "", 0, err
	}
	base := fs.Join(dir, "pack-"+p.sum.String())
	if err := writeFileAtomic(fs, dir, base+".idx", ib.Bytes()); err != nil {
		return "", 0, err
	}
	if err := fs.Rename(tmp.Name(), base+".pack"); err != nil {
		return "", 0, err
	}
	renamed = true
	s.Reindex()
	return base + ".pack", p.size, nil
}

// writeFileAtomic writes data to name through a temporary file in dir.
func writeFileAtomic(fs billy.Filesystem, dir, name string, data []byte) error {
	tmp, err := fs.TempFile(dir, "tmp_")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp.Name(), name)
	}
	if err != nil {
		_ = fs.Remove(tmp.Name())
	}
	return err
}

// appendPackHeader appends the header of a version 2 pack of count
// objects to b.
func appendPackHeader(b []byte, count uint32) []byte {
	b = append(b, "PACK"...)
	b = binary.BigEndian.AppendUint32(b, 2)
	return binary.BigEndian.AppendUint32(b, count)
}

// packEntryHeader writes the type and size header of one pack entry into
// b and returns its length: type in bits 4–6 of the first byte, the size in
// little-endian groups of 4 then 7 bits, the high bit marking continuation.
func packEntryHeader(b []byte, t plumbing.ObjectType, size int64) int {
	b[0] = byte(t)<<4 | byte(size&0x0f)
	size >>= 4
	n := 1
	for size > 0 {
		b[n-1] |= 0x80
		b[n] = byte(size & 0x7f)
		size >>= 7
		n++
	}
	return n
}

// heldPack is the pack of one unpushed commit: its file under
// objects/pack when the commit was written as a pack (then nothing is held
// in memory), or its bytes when the objects were few and stored loose.
type heldPack struct {
	file string // in the object storage's filesystem; "" when data is set
	data []byte
	size int64
}

// open returns the pack's content; close releases what it opened.
func (h heldPack) open(fs billy.Filesystem) (r io.ReaderAt, close func(), err error) {
	if h.file == "" {
		return bytes.NewReader(h.data), func() {}, nil
	}
	f, err := fs.Open(h.file)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { _ = f.Close() }, nil
}

// readPacks returns one packfile with the entries of packs, read from
// where they are held as the receiver takes it, and a function that
// releases them. The packs must be whole-object packs (as encodePack
// writes): their entries do not refer to each other's offsets, so they can
// be copied as they are; only the header's count and the trailer's SHA-1
// are new.
func readPacks(fs billy.Filesystem, packs []heldPack) (io.Reader, func(), error) {
	var closers []func()
	release := func() {
		for _, c := range closers {
			c()
		}
	}
	var bodies []io.Reader
	count := uint32(0)
	for _, p := range packs {
		ra, closeFn, err := p.open(fs)
		if err != nil {
			release()
			return nil, nil, err
		}
		closers = append(closers, closeFn)
		var hdr [packHeaderLen]byte
		if _, err := ra.ReadAt(hdr[:], 0); p.size < packHeaderLen+packTrailerLen || err != nil || string(hdr[:4]) != "PACK" {
			release()
			return nil, nil, fmt.Errorf("held pack %s: not a packfile", cmp.Or(p.file, "in memory"))
		}
		if len(packs) == 1 {
			return io.NewSectionReader(ra, 0, p.size), release, nil
		}
		count += binary.BigEndian.Uint32(hdr[8:12])
		bodies = append(bodies, io.NewSectionReader(ra, packHeaderLen, p.size-packHeaderLen-packTrailerLen))
	}
	h := sha1.New() //nolint:gosec // see the import
	body := io.TeeReader(io.MultiReader(append([]io.Reader{bytes.NewReader(appendPackHeader(nil, count))}, bodies...)...), h)
	return io.MultiReader(body, &sumReader{h: h}), release, nil
}

// sumReader reads the sum of h, taken when it is first read from.
type sumReader struct {
	h    hash.Hash
	sum  []byte
	done bool
}

func (s *sumReader) Read(p []byte) (int, error) {
	if !s.done {
		s.sum, s.done = s.h.Sum(nil), true
	}
	if len(s.sum) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.sum)
	s.sum = s.sum[n:]
	return n, nil
}

// heldPacks are the packs of unpushed commits, by commit.
type heldPacks struct {
	byCommit map[plumbing.Hash]heldPack
	size     int // of the packs held in memory
}

// hold records the pack of commit h, unless it is in memory and too much
// is held there already.
func (p *heldPacks) hold(h plumbing.Hash, pack heldPack) {
	if pack.size == 0 || (pack.file == "" && p.size+len(pack.data) > maxHeldPacks) {
		return
	}
	if p.byCommit == nil {
		p.byCommit = map[plumbing.Hash]heldPack{}
	}
	p.byCommit[h] = pack
	p.size += len(pack.data)
}

// keepOnly drops the packs of every commit not in pending (pushed, or
// replaced by a rebase) and returns the packs of pending in order, or nil
// when one of them is not held.
func (p *heldPacks) keepOnly(pending []plumbing.Hash) []heldPack {
	keep := make(map[plumbing.Hash]heldPack, len(pending))
	var out []heldPack
	complete := true
	for _, h := range pending {
		pk, ok := p.byCommit[h]
		if !ok {
			complete = false
			continue
		}
		keep[h] = pk
		out = append(out, pk)
	}
	p.byCommit, p.size = keep, 0
	for _, pk := range keep {
		p.size += len(pk.data)
	}
	if !complete || len(out) == 0 {
		return nil
	}
	return out
}

// errRemoteNotAtBase: the remote's branch is not the commit the pending
// commits are built on, so their packs may not be all it lacks.
var errRemoteNotAtBase = errors.New("remote branch is not at the local base")

// sendPack pushes head to the target with pack as the objects the remote
// lacks, after checking that the remote's target is still at base. It
// makes the same requests as go-git's push: the advertisement, then one
// receive-pack with the update command and the pack.
func (r *Repo) sendPack(ctx context.Context, base, head plumbing.Hash, pack io.Reader) (err error) {
	ep, err := transport.NewEndpoint(r.ep.url)
	if err != nil {
		return err
	}
	ep.CaBundle, ep.ClientCert, ep.ClientKey = r.ep.caBundle, r.ep.clientCert, r.ep.clientKey
	c, err := client.NewClient(ep)
	if err != nil {
		return err
	}
	s, err := c.NewReceivePackSession(ep, r.ep.auth)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	ar, err := s.AdvertisedReferencesContext(ctx)
	if err != nil {
		return err
	}
	// An empty repository advertises no references; the target is then
	// absent, as is a branch certops is about to create.
	if old := ar.References[r.target.String()]; old != base {
		return errRemoteNotAtBase
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ar.Capabilities)
	if ar.Capabilities.Supports(capability.PushOptions) {
		_ = req.Capabilities.Set(capability.PushOptions)
		for k, v := range r.opts.PushOptions {
			req.Options = append(req.Options, &packp.Option{Key: k, Value: v})
		}
	}
	req.Commands = []*packp.Command{{Name: r.target, Old: base, New: head}}
	req.Packfile = io.NopCloser(pack)
	rs, err := s.ReceivePack(ctx, req)
	if err != nil {
		return err
	}
	if rs != nil {
		return rs.Error()
	}
	return nil
}
