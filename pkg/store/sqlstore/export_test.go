package sqlstore

import "context"

// Write runs fn through the group committer, as the store's own writes do.
func (s *Store) Write(ctx context.Context, fn func(ctx context.Context, c WriteConn) error) error {
	return s.write(ctx, fn)
}
