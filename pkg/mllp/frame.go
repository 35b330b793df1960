package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Frame delimiters (MLLP Release 1 block format).
const (
	StartBlock     byte = 0x0B
	EndBlock       byte = 0x1C
	CarriageReturn byte = 0x0D
)

// DefaultMaxMessageSize is the largest message a Reader or Server accepts
// when none is configured: ADT messages are a few kilobytes, and a megabyte
// leaves room for embedded documents in OBX segments.
const DefaultMaxMessageSize = 1 << 20

// headSize is how much of an oversized frame is kept for acknowledging it.
const headSize = 4096

// ErrTooLarge reports a frame longer than the maximum message size. The
// error a Reader returns is a *TooLargeError, which matches it with
// errors.Is.
var ErrTooLarge = errors.New("mllp: message too large")

// ErrInvalidPayload reports a message that cannot be framed because it holds
// a start or end block character, which MLLP forbids inside a message.
var ErrInvalidPayload = errors.New("mllp: message contains a start (0x0B) or end (0x1C) block character")

// TooLargeError describes a frame that exceeded the maximum size.
type TooLargeError struct {
	// Head is the start of the frame, up to 4 KiB: enough for the MSH
	// segment.
	Head []byte
	// Size is the length of the frame's content as far as it was read: the
	// whole content when the frame ended with an end block.
	Size int64
	// Max is the limit it exceeded.
	Max int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("mllp: message of %d bytes exceeds the maximum of %d", e.Size, e.Max)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Reader reads MLLP frames.
type Reader struct {
	br      *bufio.Reader
	max     int
	skipped int64
}

// NewReader returns a Reader of frames from r whose content is at most max
// bytes (DefaultMaxMessageSize when max <= 0).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 32<<10), max: max}
}

// Skipped returns how many bytes outside frames the reader has discarded so
// far (line feeds some senders put between frames, or the remains of a frame
// broken off by a new start block).
func (r *Reader) Skipped() int64 { return r.skipped }

// ReadMessage returns the content of the next frame, in a new slice.
//
// Bytes before a start block are skipped. A start block inside a frame
// starts the frame anew, its incomplete predecessor being discarded: the
// sender gave up on it and will resend it. A 0x1C not followed by 0x0D is
// content, as MLLP only ends a frame on the pair. A frame longer than the
// maximum is discarded up to its end block (or the next start block) and
// reported as a *TooLargeError; the next call reads the frame after it.
//
// At the end of the stream ReadMessage returns io.EOF between frames and
// io.ErrUnexpectedEOF inside one. After any error other than a
// *TooLargeError the frame in progress is lost: the connection should be
// closed, as the sender will resend what it has no ACK for.
func (r *Reader) ReadMessage() ([]byte, error) {
	if err := r.skipToStart(); err != nil {
		return nil, err
	}
	var msg []byte
	for {
		chunk, err := r.br.ReadSlice(EndBlock)
		// A start block inside the frame: restart from it.
		if i := bytes.LastIndexByte(chunk, StartBlock); i >= 0 {
			r.skipped += int64(len(msg) + i + 1)
			msg = msg[:0]
			chunk = chunk[i+1:]
		}
		if len(msg)+len(chunk) > r.max+1 { // +1: the end block itself may be in chunk
			return nil, r.discardTooLarge(append(msg, chunk...))
		}
		msg = append(msg, chunk...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			return nil, io.ErrUnexpectedEOF
		case err != nil:
			return nil, err
		}
		// msg ends with EndBlock: the frame ends if a carriage return follows.
		b, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b == CarriageReturn {
			msg = msg[:len(msg)-1]
			if len(msg) > r.max {
				return nil, &TooLargeError{Head: head(msg), Size: int64(len(msg)), Max: r.max}
			}
			return msg, nil
		}
		// Not the end after all: the byte is content (or a new start block).
		if err := r.br.UnreadByte(); err != nil {
			return nil, err
		}
	}
}

func head(b []byte) []byte {
	return bytes.Clone(b[:min(len(b), headSize)])
}

// skipToStart discards bytes up to and including the next start block.
func (r *Reader) skipToStart() error {
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		if b == StartBlock {
			return nil
		}
		r.skipped++
	}
}

// discardTooLarge drops the rest of an oversized frame, keeping its head,
// up to the end block pair or a start block (left for the next call).
func (r *Reader) discardTooLarge(seen []byte) error {
	e := &TooLargeError{Head: head(seen), Size: int64(len(seen)), Max: r.max}
	prevEnd := len(seen) > 0 && seen[len(seen)-1] == EndBlock
	for {
		buf, err := r.br.Peek(1)
		if err != nil {
			if err == io.EOF {
				return e // the stream ended: report the frame as read so far
			}
			return err
		}
		b := buf[0]
		if b == StartBlock {
			return e
		}
		_, _ = r.br.Discard(1)
		if prevEnd && b == CarriageReturn {
			e.Size-- // the end block is not content
			return e
		}
		e.Size++
		prevEnd = b == EndBlock
		// Skip runs of content quickly.
		if !prevEnd {
			n := r.br.Buffered()
			if n > 0 {
				buf, _ := r.br.Peek(n)
				i := bytes.IndexAny(buf, "\x0b\x1c")
				if i < 0 {
					i = n
				}
				_, _ = r.br.Discard(i)
				e.Size += int64(i)
			}
		}
	}
}

// Writer writes MLLP frames.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer of frames to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteMessage writes msg as one frame, in a single Write call so that a
// frame is never interleaved with another writer's bytes on the same
// connection. It returns ErrInvalidPayload, writing nothing, when msg holds a
// block character.
func (w *Writer) WriteMessage(msg []byte) error {
	if bytes.IndexByte(msg, StartBlock) >= 0 || bytes.IndexByte(msg, EndBlock) >= 0 {
		return ErrInvalidPayload
	}
	w.buf = append(w.buf[:0], StartBlock)
	w.buf = append(w.buf, msg...)
	w.buf = append(w.buf, EndBlock, CarriageReturn)
	_, err := w.w.Write(w.buf)
	if cap(w.buf) > 64<<10 {
		w.buf = nil // do not keep a large buffer alive for small messages
	}
	return err
}

// WriteFrame writes msg to w as one frame; see Writer.WriteMessage.
func WriteFrame(w io.Writer, msg []byte) error {
	return NewWriter(w).WriteMessage(msg)
}
