package jetstream

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/passerelle-sante/passerelle/pkg/bus"
)

// awayGrace is how much longer than its back-off and AckWait a message that
// went away is waited for before the later messages of its key go on
// without it. It comes back here unless another process pulling from the
// same consumer received it (or the server lost it): the wait must end, or
// the key would be held for good, and with it a share of MaxAckPending.
// A variable for the tests.
var awayGrace = 10 * time.Second

// lanes runs the handler for a consumer with Lanes (bus.ConsumerConfig).
//
// Each delivered message has a key: its bus.HeaderOrderKey header, else ""
// (one key for every message without the header, so that those keep the
// order they had with Concurrency 1). A key is idle, running (one goroutine
// handles its messages one after the other) or away (its message failed and
// waits out its back-off on the server). A message whose key is not idle is
// held here, in delivery order, with its in-progress signals running, so
// that the server neither redelivers it nor counts a delivery for waiting;
// when the key's current message is settled (acknowledged or
// dead-lettered), the next held one is handled. When it went away, the held
// ones wait for its redelivery — recognised by its stream sequence — and
// are handled after it is settled.
//
// Every held, running or away message is unacknowledged, so the server's
// MaxAckPending (= Lanes) bounds them all together: at most Lanes goroutines
// handle messages, and fewer than Lanes messages are ever held.
//
// What breaks the order of a key: a process that stops while a message of
// the key is away hands its held followers back for immediate redelivery,
// so the next process may handle them before the away message comes back;
// and with several processes pulling from one consumer, each keeps the
// order of the messages it receives, but two messages of one key may be
// delivered to two processes (see awayGrace too).
type lanes struct {
	c   *consumer
	ctx context.Context
	wg  sync.WaitGroup

	mu     sync.Mutex
	closed bool
	keys   map[string]*lane // the keys that are not idle
}

// lane is one key's state, while it is not idle: exactly one of running and
// away.
type lane struct {
	running bool
	// away is the stream sequence of the key's message that waits out its
	// back-off (0 when none), until timer lets its followers go on.
	away  uint64
	timer *time.Timer
	// queue is the key's held messages, in delivery order.
	queue []heldMsg
}

type heldMsg struct {
	m    jetstream.Msg
	seq  uint64
	stop func() // ends its in-progress signals
}

func newLanes(ctx context.Context, c *consumer) *lanes {
	return &lanes{c: c, ctx: ctx, keys: map[string]*lane{}}
}

// arrive takes a delivered message: handled at once if its key is idle or
// if it is its key's away message come back, held otherwise.
func (l *lanes) arrive(m jetstream.Msg) {
	key := m.Headers().Get(bus.HeaderOrderKey)
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.c.release(m)
		return
	}
	ln := l.keys[key]
	switch {
	case ln == nil:
		ln = &lane{}
		l.keys[key] = ln
		l.start(key, ln, m)
	case !ln.running && seq != 0 && ln.away == seq:
		ln.away = 0
		ln.timer.Stop()
		l.start(key, ln, m)
	default:
		for i, h := range ln.queue {
			if seq != 0 && h.seq == seq {
				// Redelivered while held (its in-progress signals did not
				// reach the server): the new delivery takes its place.
				h.stop()
				ln.queue[i] = heldMsg{m: m, seq: seq, stop: l.c.keepAlive(m)}
				return
			}
		}
		ln.queue = append(ln.queue, heldMsg{m: m, seq: seq, stop: l.c.keepAlive(m)})
	}
}

// start runs the key's messages from m on; l.mu is held.
func (l *lanes) start(key string, ln *lane, m jetstream.Msg) {
	ln.running = true
	l.wg.Go(func() { l.run(key, ln, m) })
}

// run handles m, then the key's held messages one after the other, until
// none is left, one goes away, or the consumer stops.
func (l *lanes) run(key string, ln *lane, m jetstream.Msg) {
	for {
		out, seq, delay := l.c.handle(l.ctx, m)
		l.mu.Lock()
		switch {
		case l.closed || l.ctx.Err() != nil || out == released:
			// Stopping: close hands the held messages back.
			ln.running = false
			l.mu.Unlock()
			return
		case out == away && seq != 0:
			ln.running = false
			ln.away = seq
			ln.timer = time.AfterFunc(delay+l.c.cfg.AckWait+awayGrace, func() { l.giveUp(key, ln, seq) })
			l.mu.Unlock()
			return
		case len(ln.queue) == 0:
			delete(l.keys, key)
			l.mu.Unlock()
			return
		}
		next := ln.pop()
		l.mu.Unlock()
		next.stop()
		m = next.m
	}
}

// giveUp lets the followers of an away message go on when it did not come
// back in time.
func (l *lanes) giveUp(key string, ln *lane, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.keys[key] != ln || ln.running || ln.away != seq {
		return
	}
	ln.away = 0
	l.c.log.Warn("a message waiting out its back-off did not come back; the later messages of its key go on without it",
		"stream_seq", seq, "held", len(ln.queue))
	if len(ln.queue) == 0 {
		delete(l.keys, key)
		return
	}
	next := ln.pop()
	next.stop()
	l.start(key, ln, next.m)
}

func (ln *lane) pop() heldMsg {
	h := ln.queue[0]
	ln.queue[0] = heldMsg{}
	ln.queue = ln.queue[1:]
	return h
}

// close waits for the running messages to end, after ctx ended and pulling
// stopped, then hands the held ones back for immediate redelivery.
func (l *lanes) close() {
	l.mu.Lock()
	l.closed = true
	for _, ln := range l.keys {
		if ln.timer != nil {
			ln.timer.Stop()
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range l.keys {
		for _, h := range ln.queue {
			h.stop()
			l.c.release(h.m)
		}
		ln.queue = nil
	}
	clear(l.keys)
}
