package easypoststandin

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strings"
)

// labelFiles are the label files served for every bought shipment: a blank
// 4x6 label with a border. They carry nothing of the shipment, so no
// customer's address ever reaches a file, a printer or a screenshot.
type labelFiles map[string][]byte // extension → content

var labelTypes = map[string]string{
	"png":  "image/png",
	"pdf":  "application/pdf",
	"zpl":  "text/plain; charset=utf-8",
	"epl2": "text/plain; charset=utf-8",
}

func newLabelFiles() labelFiles {
	return labelFiles{
		"png": labelPNG(),
		"pdf": labelPDF(),
		// 4x6 at 203 dpi: 812x1218 dots, a 4-dot box 20 dots in.
		"zpl":  []byte("^XA\n^PW812\n^LL1218\n^FO20,20^GB772,1178,4^FS\n^XZ\n"),
		"epl2": []byte("N\nq812\nQ1218,24\nX20,20,4,792,1198\nP1\n"),
	}
}

// serveFile answers GET /files/postage_label/<shipment id>.<ext>, without
// auth as EasyPost's label URLs are public: the PNG once bought, other
// formats once converted through the label route.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	id, ext, _ := strings.Cut(name, ".")
	s.mu.Lock()
	st := s.byID[id]
	ok := st != nil && st.bought && (ext == "png" || st.formats[ext])
	s.mu.Unlock()
	body, known := s.files[ext]
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !ok || !known {
		s.log.Debug("easypost stand-in", "method", r.Method, "path", r.URL.Path, "status", http.StatusNotFound)
		http.NotFound(w, r)
		return
	}
	s.log.Debug("easypost stand-in", "method", r.Method, "path", r.URL.Path, "status", http.StatusOK)
	w.Header().Set("Content-Type", labelTypes[ext])
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// labelPNG is 1200x1800: 4x6 inches at the 300 dpi the PostageLabel says.
func labelPNG() []byte {
	const w, h, border = 1200, 1800, 12
	img := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.White, color.Black})
	fill := func(x0, y0, x1, y1 int) {
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				img.SetColorIndex(x, y, 1)
			}
		}
	}
	fill(0, 0, w, border)
	fill(0, h-border, w, h)
	fill(0, 0, border, h)
	fill(w-border, 0, w, h)
	fill(0, 600, w, 606) // where a real label separates addresses from barcodes
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// labelPDF is a one-page 4x6 (288x432 pt) PDF with a border.
func labelPDF() []byte {
	content := "4 w 6 6 276 420 re S\n"
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] /Resources << >> /Contents 4 0 R >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", len(content), content),
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}
