package changes

import (
	"fmt"
	"strings"

	"github.com/sluicemesh/sluice/server/internal/store"
)

// maxDiffLines bounds the diff's input: past it (a resource of thousands of lines) the diff
// says so instead of spending quadratic time.
const maxDiffLines = 4000

// Diff returns a unified diff of two objects' YAML ("" when they are equal). A nil object is
// an absent resource.
func Diff(before, after *store.Object) string {
	a, b := YAML(before), YAML(after)
	if a == b {
		return ""
	}
	name := "resource"
	switch {
	case after != nil:
		name = after.Key().String()
	case before != nil:
		name = before.Key().String()
	}
	return UnifiedDiff(name, a, b)
}

// UnifiedDiff returns a unified diff of two texts, with three lines of context.
func UnifiedDiff(name, a, b string) string {
	al, bl := splitLines(a), splitLines(b)
	if len(al) > maxDiffLines || len(bl) > maxDiffLines {
		return fmt.Sprintf("--- %s\n+++ %s\n(too long to diff: %d and %d lines)\n", name, name, len(al), len(bl))
	}
	ops := lineOps(al, bl)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s (before)\n+++ %s (after)\n", name, name)
	const context = 3
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		// A hunk runs from the first change, with context, until a gap of unchanged lines
		// longer than twice the context.
		start := max(0, i-context)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			gap := end
			for gap < len(ops) && ops[gap].kind == ' ' {
				gap++
			}
			if gap == len(ops) || gap-end > 2*context {
				end = min(len(ops), end+context)
				break
			}
			end = gap
		}
		aStart, bStart, aLen, bLen := ops[start].a, ops[start].b, 0, 0
		for _, op := range ops[start:end] {
			if op.kind != '+' {
				aLen++
			}
			if op.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", aStart+1, aLen, bStart+1, bLen)
		for _, op := range ops[start:end] {
			sb.WriteByte(op.kind)
			sb.WriteString(op.text)
			sb.WriteByte('\n')
		}
		i = end
	}
	return sb.String()
}

type lineOp struct {
	kind byte // ' ', '-', '+'
	text string
	a, b int // line index in a and b where the op stands
}

// lineOps computes a shortest edit script by longest common subsequence.
func lineOps(a, b []string) []lineOp {
	n, m := len(a), len(b)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []lineOp
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, lineOp{' ', a[i], i, j})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			ops = append(ops, lineOp{'+', b[j], i, j})
			j++
		default:
			ops = append(ops, lineOp{'-', a[i], i, j})
			i++
		}
	}
	return ops
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
