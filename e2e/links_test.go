package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// markdownAnchors returns the anchors GitHub makes of a Markdown file's
// headings (fenced code blocks left out).
func markdownAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		h = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`).ReplaceAllString(h, "")
		anchors[strings.ReplaceAll(h, " ", "-")] = true
	}
	return anchors
}

// TestDocsLinks: every relative link of the README, the guides and the
// project's other documents names a file that exists and, with #, a heading
// of it, so that no text moved between documents leaves a link behind.
func TestDocsLinks(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md", "../SECURITY.md", "../CONTRIBUTING.md", "../CHANGELOG.md", "../ARCHITECTURE.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
			}
			text, err := os.ReadFile(dest)
			if err != nil {
				t.Errorf("%s: link %s: %v", f, target, err)
				continue
			}
			checked++
			if anchor != "" && !markdownAnchors(string(text))[anchor] {
				t.Errorf("%s: link %s: %s has no heading #%s", f, target, dest, anchor)
			}
		}
	}
	if checked < 50 {
		t.Errorf("checked %d links, want the documents' many", checked)
	}
}

// TestChangelogs: CHANGELOG.md is in the Keep a Changelog form, with an
// Unreleased section, and the Debian package's changelog has an entry for
// each version it releases, and no other; VERSION is the newest.
func TestChangelogs(t *testing.T) {
	md, err := os.ReadFile("../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	deb, err := os.ReadFile("../packaging/changelog")
	if err != nil {
		t.Fatal(err)
	}
	version, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "\n## [Unreleased]\n") {
		t.Error("CHANGELOG.md has no ## [Unreleased] section")
	}
	var released, packaged []string
	for _, m := range regexp.MustCompile(`\n## \[([0-9][^\]]*)\] - [0-9]{4}-[0-9]{2}-[0-9]{2}\n`).FindAllStringSubmatch(string(md), -1) {
		released = append(released, m[1])
	}
	for _, m := range regexp.MustCompile(`(?m)^tokenauthd \(([^)]+)\) `).FindAllStringSubmatch(string(deb), -1) {
		packaged = append(packaged, m[1])
	}
	if len(released) == 0 || strings.Join(released, " ") != strings.Join(packaged, " ") {
		t.Errorf("CHANGELOG.md releases %v, packaging/changelog %v: want the same versions, newest first", released, packaged)
	}
	if len(released) > 0 && released[0] != strings.TrimSpace(string(version)) {
		t.Errorf("the newest release in CHANGELOG.md is %s, VERSION says %s", released[0], strings.TrimSpace(string(version)))
	}
}
