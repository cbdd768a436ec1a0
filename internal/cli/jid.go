package cli

import (
	"fmt"
	"strings"
)

// SplitJID splits user@host.
func SplitJID(jid string) (user, host string, err error) {
	user, host, ok := strings.Cut(jid, "@")
	if !ok || user == "" || host == "" || strings.Contains(host, "@") {
		return "", "", fmt.Errorf("%q is not user@host", jid)
	}
	return user, host, nil
}
