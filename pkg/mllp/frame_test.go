package mllp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func frame(s string) string { return "\x0b" + s + "\x1c\r" }

func readAll(t *testing.T, r *Reader) (msgs []string, errs []error) {
	t.Helper()
	for i := 0; i < 100; i++ {
		m, err := r.ReadMessage()
		if err == io.EOF {
			return
		}
		if err != nil {
			errs = append(errs, err)
			if !errors.Is(err, ErrTooLarge) {
				return
			}
			msgs = append(msgs, "<too large>")
			continue
		}
		msgs = append(msgs, string(m))
	}
	t.Fatal("reader does not end")
	return
}

func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{"one", frame("MSH|a"), 0, []string{"MSH|a"}, nil},
		{"two in a row", frame("A") + frame("B"), 0, []string{"A", "B"}, nil},
		{"junk between frames", "\r\n" + frame("A") + "\r\n\r\n" + frame("B") + "\n", 0, []string{"A", "B"}, nil},
		{"empty frame", frame(""), 0, []string{""}, nil},
		{"lone end block is content", frame("A\x1cB"), 0, []string{"A\x1cB"}, nil},
		{"end block before end", frame("A\x1c"), 0, []string{"A\x1c"}, nil},
		{"start block restarts", "\x0bbroken" + frame("A"), 0, []string{"A"}, nil},
		{"start block after lone end block", "\x0bbroken\x1c" + frame("A"), 0, []string{"A"}, nil},
		{"truncated", "\x0bMSH|a", 0, nil, io.ErrUnexpectedEOF},
		{"truncated after end block", "\x0bMSH|a\x1c", 0, nil, io.ErrUnexpectedEOF},
		{"exactly max", frame("12345"), 5, []string{"12345"}, nil},
		{"too large then next", frame("123456") + frame("ok"), 5, []string{"<too large>", "ok"}, ErrTooLarge},
		// An unfinished frame is abandoned when a start block arrives in
		// the same read, whatever its size.
		{"unfinished large frame, then start", "\x0b123456789" + frame("ok"), 5, []string{"ok"}, nil},
		{"too large with lone end block", frame("1234\x1c5678") + frame("ok"), 5, []string{"<too large>", "ok"}, ErrTooLarge},
		{"only junk", "\r\n\r\n", 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "one byte at a time"} {
				var src io.Reader = strings.NewReader(tt.in)
				if mode != "whole" {
					src = iotest.OneByteReader(src)
				}
				msgs, errs := readAll(t, NewReader(src, tt.max))
				if strings.Join(msgs, "|") != strings.Join(tt.want, "|") {
					t.Errorf("%s: messages = %q, want %q", mode, msgs, tt.want)
				}
				if tt.wantErr == nil && len(errs) > 0 || tt.wantErr != nil && (len(errs) == 0 || !errors.Is(errs[0], tt.wantErr)) {
					t.Errorf("%s: errors = %v, want %v", mode, errs, tt.wantErr)
				}
			}
		})
	}
}

func TestTooLargeError(t *testing.T) {
	big := "MSH|^~\\&|A|B|C|D|2026||ADT^A03|CTRL42|P|2.5\r" + strings.Repeat("OBX|1|ED|||", 2000)
	r := NewReader(strings.NewReader(frame(big)+frame("next")), 1000)
	_, err := r.ReadMessage()
	var e *TooLargeError
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	if e.Size != int64(len(big)) || e.Max != 1000 || !bytes.HasPrefix([]byte(big), e.Head) || len(e.Head) < 100 {
		t.Errorf("TooLargeError = size %d max %d head %d bytes", e.Size, e.Max, len(e.Head))
	}
	if ControlID(e.Head) != "CTRL42" {
		t.Errorf("ControlID(head) = %q", ControlID(e.Head))
	}
	if m, err := r.ReadMessage(); err != nil || string(m) != "next" {
		t.Errorf("after too large: %q, %v", m, err)
	}
}

func TestLargeFrameAcrossBuffers(t *testing.T) {
	big := strings.Repeat("PID|1||X\r", 20000) // 180 kB, more than the bufio buffer
	r := NewReader(strings.NewReader(frame(big)+frame("B")), 0)
	if m, err := r.ReadMessage(); err != nil || string(m) != big {
		t.Fatalf("big frame: %d bytes, %v", len(m), err)
	}
	if m, err := r.ReadMessage(); err != nil || string(m) != "B" {
		t.Fatalf("next: %q, %v", m, err)
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteMessage([]byte("MSH|a\r")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, []byte("B")); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "\x0bMSH|a\r\x1c\r\x0bB\x1c\r" {
		t.Errorf("written %q", got)
	}
	for _, bad := range []string{"a\x0bb", "a\x1cb", "\x1c"} {
		if err := w.WriteMessage([]byte(bad)); !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("WriteMessage(%q) = %v", bad, err)
		}
	}
}

func TestControlID(t *testing.T) {
	tests := map[string]string{
		"MSH|^~\\&|A|B|C|D|2026||ADT^A03|MSG000123|P|2.5\rPID": "MSG000123",
		"\r\nMSH|^~\\&|A|B|C|D|2026||ADT^A03|X1":               "X1",
		"MSH#^~\\&#A#B#C#D#2026##ADT^A03#X2#P":                 "X2",
		"MSH|^~\\&|A|B|C|D|2026||ADT^A03\r|X3|":                "",
		"PID|1":                                                "",
		"MSH|^~\\&|A|B|C|D|2026||ADT^A03|\x01bad|P":            "",
		"": "",
	}
	for in, want := range tests {
		if got := ControlID([]byte(in)); got != want {
			t.Errorf("ControlID(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzMLLPReader checks that the reader never panics, never returns more
// than its maximum, and reads back what Writer writes, junk between frames
// included.
func FuzzMLLPReader(f *testing.F) {
	f.Add([]byte(frame("MSH|^~\\&|A|B|C|D|2026||ADT^A03|1|P|2.5\r")), []byte("MSH|a\r"))
	f.Add([]byte("\r\n"+frame("A")+"\x0bbroken"+frame("B")+"\x1c\r"), []byte(""))
	f.Add([]byte(frame("1234567890abcdefghijklmnopqrstuvwxyz")+frame("ok")), []byte("x\x1c"))
	f.Add([]byte("\x0b\x1c\x1c\r\x0b\x0b\x1c\r"), []byte("\r\n"))
	const max = 32
	f.Fuzz(func(t *testing.T, stream, payload []byte) {
		r := NewReader(iotest.HalfReader(bytes.NewReader(stream)), max)
		for i := 0; ; i++ {
			m, err := r.ReadMessage()
			if err != nil {
				var tl *TooLargeError
				if errors.As(err, &tl) {
					if tl.Size <= max || len(tl.Head) > headSize {
						t.Fatalf("TooLargeError size %d head %d", tl.Size, len(tl.Head))
					}
					continue
				}
				break
			}
			if len(m) > max {
				t.Fatalf("message of %d bytes above the maximum %d", len(m), max)
			}
			if i > len(stream) {
				t.Fatal("more messages than bytes")
			}
		}

		// Frames written by Writer come back identically, with junk (no
		// start block) between them.
		var buf bytes.Buffer
		w := NewWriter(&buf)
		if err := w.WriteMessage(payload); err != nil {
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatal(err)
			}
			if bytes.IndexByte(payload, StartBlock) < 0 && bytes.IndexByte(payload, EndBlock) < 0 {
				t.Fatalf("valid payload refused: %q", payload)
			}
			return
		}
		buf.WriteString("\r\n")
		if err := w.WriteMessage(payload); err != nil {
			t.Fatal(err)
		}
		r = NewReader(iotest.OneByteReader(&buf), len(payload))
		for k := 0; k < 2; k++ {
			m, err := r.ReadMessage()
			if err != nil || !bytes.Equal(m, payload) {
				t.Fatalf("frame %d read back as %q, %v; want %q", k, m, err, payload)
			}
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("after the frames: %v", err)
		}
	})
}
