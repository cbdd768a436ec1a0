package verifier_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

func ExampleVerifier_Verify() {
	// RFC 6238's test seed: at t = 59 s its 8-digit code is 94287082.
	now := func() time.Time { return time.Unix(59, 0) }
	params := verifier.DefaultParams()
	v, err := verifier.New(verifier.Config{
		Params: params,
		Hosts: map[string]verifier.Host{"example.org": {
			TokenSecrets: [][]byte{[]byte("token secret")},
			OTPSeeds:     []string{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
		}},
		Store: replay.NewMemory(replay.MemoryOptions{TTL: params.ReplayTTL(), Now: now}),
		Now:   now,
	})
	if err != nil {
		panic(err)
	}
	token := verifier.Sign([]byte("token secret"), "94287082", "0123456789", "alice", "example.org")
	ctx := context.Background()
	fmt.Println(v.Verify(ctx, "alice", "example.org", token).Reason)
	fmt.Println(v.Verify(ctx, "alice", "example.org", token).Reason)
	fmt.Println(v.Verify(ctx, "bob", "example.org", token).Reason)
	// Output:
	// accepted
	// replayed
	// bad_signature
}
