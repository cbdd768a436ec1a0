package daemon

import (
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestLongUserNameLogCut: a refused request with a 60 KB user name logs a
// line of bounded size that says it was cut (the stdin/stdout helper,
// in-process).
func TestLongUserNameLogCut(t *testing.T) {
	user := strings.Repeat("u", 60_000)
	code, out, errOut := runCmd(t, fixture.Frame("auth:"+user+":example.org:x"), "-config", fixture.RFCConfig(t, ""))
	if code != 0 || out != string(fixture.FrameNo) {
		t.Fatalf("exit %d, stdout %x", code, out)
	}
	fixture.CheckCutLog(t, errOut, 60_000)
}
