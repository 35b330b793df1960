// Package mllp carries HL7 v2 messages over TCP with the Minimal Lower Layer
// Protocol (MLLP Release 1, HL7 v2 transport specification): each message is
// sent as a frame, a start block 0x0B, the message, then an end block 0x1C
// followed by a carriage return 0x0D.
//
// Reader and Writer do the framing; Server accepts connections from hospital
// interface engines and hands each complete frame to a Handler, writing back
// the acknowledgement the Handler returns.
//
// # Acknowledgements belong to the Handler
//
// The server never acknowledges on its own: an ACK tells the sender it may
// forget the message, so only the Handler, once the message is durably stored,
// can build it. A Handler that returns nil has not taken the message: the
// server closes the connection without answering, and the sender, having had
// no ACK, sends the message again on a new connection. A Handler that panics is
// treated the same way.
//
// # One message at a time per connection
//
// MLLP senders wait for the ACK of a message before sending the next one on
// the same connection (original-mode acknowledgement, HL7 v2.5 chapter 2),
// and the order of ADT movements matters. The server therefore reads,
// handles and answers the frames of a connection strictly in turn; many
// connections are served concurrently.
//
// # Frames that are too large
//
// A frame longer than MaxMessageSize is never buffered whole: the reader keeps
// its first bytes, discards the rest up to its end block, and reports
// ErrTooLarge. If the Handler also implements OversizeHandler, the server
// passes it those first bytes (enough for MSH, so it can answer an AR ACK
// naming the message's control id) and writes back what it returns, keeping
// the connection open. Otherwise the server logs the event and closes the
// connection: without an ACK the sender keeps the message in its queue, where
// the interface team sees it, rather than losing it.
//
// # Limits against exhaustion
//
// A connection holds a slot while it is open: MaxConns in all and
// MaxConnsPerAddr per remote address, so that one host cannot take the slots
// of every hospital. Its deadlines are set once and never pushed back by the
// bytes that arrive: the TLS handshake must end within HandshakeTimeout, the
// next frame must start within IdleTimeout of the last ACK, and a frame must
// arrive whole within FrameTimeout of its start block. A client trickling a
// byte now and then is therefore cut like a silent one.
//
// # Patient data
//
// Message contents are never logged: only the remote address, the frame
// size and the message control id (MSH-10), which identifies a message in
// both systems' logs without saying anything about the patient.
package mllp
