package campaign

import "fmt"

// Suggest returns ` (did you mean "x"?)` when one of options is close to s
// (a typo: at most two edits, or a third of s for longer words), or "".
// Error messages about an unknown name (a field, event type, template,
// lead source) end with it; the campaign validator, `starter simulate`
// and `starter launch` use this one rule.
func Suggest(s string, options []string) string {
	best, bestD := "", 1<<30
	for _, o := range options {
		if d := editDistance(s, o); d < bestD {
			best, bestD = o, d
		}
	}
	if best == "" || bestD > max(2, len(s)/3) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
