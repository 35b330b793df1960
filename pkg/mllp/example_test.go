package mllp_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"

	"github.com/passerelle-sante/passerelle/pkg/mllp"
)

// store stands for the receiver's durable message store.
func store(ctx context.Context, msg []byte) error { return nil }

func ExampleServer() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	srv := &mllp.Server{
		Addr: ":2575",
		Handler: mllp.HandlerFunc(func(ctx context.Context, c mllp.ConnInfo, msg []byte) []byte {
			if err := store(ctx, msg); err != nil {
				return nil // not stored: no ACK, the sender will resend
			}
			// Build the real ACK with hl7v2.Ack once the message is stored.
			return []byte("MSH|^~\\&|PASSERELLE|CPTS|||20261003153005||ACK|1|P|2.5\rMSA|AA|" + mllp.ControlID(msg) + "\r")
		}),
		Logger: slog.Default(),
	}
	if err := srv.ListenAndServe(ctx); err != nil {
		slog.Error("mllp server", "error", err)
	}
}
