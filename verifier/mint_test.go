package verifier

import "testing"

// TestNewNonce: NonceDigits decimal digits, each digit about equally
// likely (a biased draw, such as a byte modulo 10, shows here), no two
// nonces alike.
func TestNewNonce(t *testing.T) {
	const n = 2000
	var counts [10]int
	seen := map[string]bool{}
	for range n {
		s, err := NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != NonceDigits || seen[s] {
			t.Fatalf("nonce %q: length %d or seen before", s, len(s))
		}
		seen[s] = true
		for _, c := range []byte(s) {
			if c < '0' || c > '9' {
				t.Fatalf("nonce %q holds %q", s, c)
			}
			counts[c-'0']++
		}
	}
	// 64,000 digits: 6,400 of each, give or take 76 (one standard
	// deviation); ten deviations either way.
	for d, c := range counts {
		if c < 5640 || c > 7160 {
			t.Errorf("digit %d drawn %d times of %d, want about %d", d, c, n*NonceDigits, n*NonceDigits/10)
		}
	}
}
