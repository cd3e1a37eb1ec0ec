package inbound

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Kind is what a request asks for.
type Kind string

const (
	Deletion   Kind = "deletion"
	Access     Kind = "access"
	Correction Kind = "correction"
)

// Words are the phrases that make a request one for access or correction
// rather than deletion.
type Words struct {
	Access     []string
	Correction []string
}

// DefaultWords are English and German phrases. A phrase matches at the
// start of a word, so "auskunft" finds "Auskunftsersuchen" and "correct"
// does not find "incorrect"; German compounds that end in a phrase
// ("Datenauskunft") are listed on their own.
func DefaultWords() Words {
	return Words{
		Access: []string{
			"copy of my data", "access request", "data access", "what data", "which data",
			"what personal data", "subject access",
			"auskunft", "datenauskunft", "selbstauskunft", "kopie meiner daten",
			"welche daten", "was für daten",
		},
		Correction: []string{
			"correct", "rectif", "wrong address", "change my address", "update my address",
			"berichtigung", "berichtigen", "korrektur", "korrigieren",
			"adresse ändern", "adressänderung", "falsche adresse",
		},
	}
}

// headLines is how many non-empty lines of the body are read: a request
// says what it wants at the start, and quoted text further down would
// otherwise decide it.
const headLines = 5

// Classify reads the subject and the first five non-empty lines of the body
// that are not quoted ("> ..."). Access wins over correction, and deletion
// is what is left: when in doubt a request is not treated as a deletion,
// which cannot be undone.
func Classify(m Message, w Words) Kind {
	text := normalize(m.Subject + "\n" + strings.Join(firstLines(m.Text, headLines), "\n"))
	if containsAny(text, w.Access) {
		return Access
	}
	if containsAny(text, w.Correction) {
		return Correction
	}
	return Deletion
}

func firstLines(text string, n int) []string {
	var out []string
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ">") {
			continue
		}
		if out = append(out, line); len(out) == n {
			break
		}
	}
	return out
}

// normalize composes (NFC), case-folds (so "STRASSE" meets "straße") and
// collapses whitespace, so that a phrase may span a line break.
func normalize(s string) string {
	return strings.Join(strings.Fields(cases.Fold().String(norm.NFC.String(s))), " ")
}

// containsAny reports whether one of phrases starts a word of text, which
// is normalized.
func containsAny(text string, phrases []string) bool {
	for _, p := range phrases {
		p = normalize(p)
		if p == "" {
			continue
		}
		for i := 0; ; {
			j := strings.Index(text[i:], p)
			if j < 0 {
				break
			}
			at := i + j
			if prev, _ := utf8.DecodeLastRuneInString(text[:at]); at == 0 || !isWordRune(prev) {
				return true
			}
			i = at + len(p)
		}
	}
	return false
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) }

// ParseWords reads a configured word list such as
// "access=auskunft|copy of my data;correction=berichtigung|wrong address".
// Both kinds are required, so that a typo cannot quietly turn every request
// of one kind into a deletion.
func ParseWords(s string) (Words, error) {
	var w Words
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, list, ok := strings.Cut(part, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok {
			return Words{}, fmt.Errorf("words: %q is not kind=word|word", part)
		}
		if seen[key] {
			return Words{}, fmt.Errorf("words: %s is given twice", key)
		}
		seen[key] = true
		var words []string
		for word := range strings.SplitSeq(list, "|") {
			word = strings.TrimSpace(word)
			if word == "" {
				return Words{}, fmt.Errorf("words: %s has an empty word", key)
			}
			words = append(words, word)
		}
		switch key {
		case "access":
			w.Access = words
		case "correction":
			w.Correction = words
		default:
			return Words{}, fmt.Errorf("words: unknown kind %q (access or correction)", key)
		}
	}
	if len(w.Access) == 0 || len(w.Correction) == 0 {
		return Words{}, errors.New("words: both access= and correction= are required")
	}
	return w, nil
}

// Excerpt is the first n characters (runes) of text, for a human reviewer.
func Excerpt(text string, n int) string {
	if n <= 0 {
		return ""
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	i := 0
	for pos := range text {
		if i == n {
			return text[:pos]
		}
		i++
	}
	return text
}
