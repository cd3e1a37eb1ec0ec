package inbound

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name    string
		subject string
		text    string
		want    Kind
	}{
		{name: "plain deletion EN", subject: "Delete my data", text: "Please delete everything you have about me.", want: Deletion},
		{name: "plain deletion DE", subject: "Löschung", text: "Bitte löschen Sie meine Daten.", want: Deletion},
		{name: "empty", want: Deletion},
		{name: "access in subject EN", subject: "Access request", text: "Hello,", want: Access},
		{name: "access in body EN", subject: "Privacy", text: "Hi,\n\nI would like a copy of my data.", want: Access},
		{name: "access, upper case", subject: "WHAT DATA DO YOU HOLD?", want: Access},
		{name: "access DE", subject: "Anfrage", text: "Guten Tag,\nich bitte um Auskunft nach Art. 15 DSGVO.", want: Access},
		{name: "access DE compound", subject: "Auskunftsersuchen", want: Access},
		{name: "access DE, Datenauskunft", subject: "Datenauskunft", want: Access},
		{name: "access DE phrase", text: "Welche Daten haben Sie über mich gespeichert?", want: Access},
		{name: "access DE decomposed umlaut and line break", text: "Ich möchte eine Kopie\nmeiner Daten", want: Access},
		{name: "correction EN", subject: "Wrong address", text: "My parcel went to the wrong place.", want: Correction},
		{name: "correction EN verb", text: "Please correct my street name.", want: Correction},
		{name: "correction DE", subject: "Berichtigung", want: Correction},
		{name: "correction DE umlaut", text: "Ich möchte meine ADRESSE ÄNDERN.", want: Correction},
		{name: "correction DE, sharp s folded", text: "FALSCHE ADRESSE in der Straße", want: Correction},
		{name: "incorrect is not correct", text: "Your shop delivered something incorrect; delete my account.", want: Deletion},
		{name: "access wins over correction", text: "Correct my address and send me a copy of my data.", want: Access},
		{name: "only the first five lines count", text: "Delete my data.\n\n1\n2\n3\n4\nAlso: what data do you have?", want: Deletion},
		{name: "quoted text does not count", text: "Delete it.\n> You can ask for a copy of my data anytime.", want: Deletion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.text
			if strings.Contains(tt.name, "decomposed") {
				text = strings.ReplaceAll(text, "ö", "o\u0308")
			}
			require.Equal(t, tt.want, Classify(Message{Subject: tt.subject, Text: text}, DefaultWords()))
		})
	}
}

func TestParseWords(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Words
		wantErr string
	}{
		{name: "both", in: "access=auskunft|copy of my data;correction=berichtigung",
			want: Words{Access: []string{"auskunft", "copy of my data"}, Correction: []string{"berichtigung"}}},
		{name: "spaces and a trailing semicolon", in: " Correction = fix | amend ; access = inzage ;",
			want: Words{Access: []string{"inzage"}, Correction: []string{"fix", "amend"}}},
		{name: "empty", in: "", wantErr: "both access= and correction= are required"},
		{name: "one kind only", in: "access=auskunft", wantErr: "both access= and correction= are required"},
		{name: "no =", in: "access auskunft;correction=x", wantErr: "is not kind=word|word"},
		{name: "unknown kind", in: "access=a;correction=b;deletion=c", wantErr: `unknown kind "deletion"`},
		{name: "kind twice", in: "access=a;access=b;correction=c", wantErr: "access is given twice"},
		{name: "empty word", in: "access=a||b;correction=c", wantErr: "access has an empty word"},
		{name: "no words", in: "access=;correction=c", wantErr: "access has an empty word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWords(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, Access, Classify(Message{Subject: got.Access[0]}, got))
		})
	}
}

func TestExcerpt(t *testing.T) {
	tests := []struct {
		name string
		text string
		n    int
		want string
	}{
		{name: "short", text: "hallo", n: 500, want: "hallo"},
		{name: "runes, not bytes", text: "äöüß und mehr", n: 4, want: "äöüß"},
		{name: "exact", text: "abc", n: 3, want: "abc"},
		{name: "zero", text: "abc", n: 0, want: ""},
		{name: "invalid UTF-8", text: "a\xffb", n: 2, want: "a\uFFFD"},
		{name: "500 of more", text: strings.Repeat("ü", 600), n: 500, want: strings.Repeat("ü", 500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Excerpt(tt.text, tt.n))
		})
	}
}

func TestMessageRedacted(t *testing.T) {
	m := Message{From: "jane@shop.example", Subject: "Löschung", Text: "Jane Doe, Hauptstraße 1"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("inbound", "msg", m)
	for _, out := range []string{fmt.Sprintf("%v", m), fmt.Sprintf("%+v", m), fmt.Sprintf("%#v", m), logged.String()} {
		require.NotContains(t, out, "jane")
		require.NotContains(t, out, "Hauptstraße")
		require.Contains(t, out, "REDACTED")
	}
}
