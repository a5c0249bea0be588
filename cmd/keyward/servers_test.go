package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEveryServerUsesTheBuilder holds the binary to web/httpserver: no
// package the keyward binary links (of this module) builds an http.Server
// of its own or serves through net/http's or httptest's package functions,
// which would escape the timeouts, header limit and connection cap.
func TestEveryServerUsesTheBuilder(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	const module = "github.com/keyward/keyward"
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", "-f",
		`{{.ImportPath}}{{range .GoFiles}} {{$.Dir}}/{{.}}{{end}}`, module+"/cmd/keyward").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	// Linked in, never run by the binary.
	exempt := map[string]string{
		module + "/test/internal/fakesrv": "Start takes a testing.TB: tests start the fakes with it, while keyward demo serves fakeidp's Handler through serveUntil",
	}
	checked := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], module) || fields[0] == module+"/web/httpserver" || exempt[fields[0]] != "" {
			continue
		}
		for _, file := range fields[1:] {
			checked++
			for _, pos := range ownServers(t, file) {
				t.Errorf("%s builds or serves an HTTP server itself; use web/httpserver.New", pos)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("checked %d files; go list found too few of the binary's sources", checked)
	}
}

// ownServers returns the positions in file of an http.Server literal (also
// elided in a slice, array or map literal), new(http.Server), or a call to
// http.ListenAndServe(TLS), http.Serve(TLS) or an httptest server.
func ownServers(t *testing.T, file string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{} // local name → import path
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := filepath.Base(p)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = p
	}
	is := func(e ast.Expr, pkg, sel string) bool {
		if s, ok := e.(*ast.StarExpr); ok {
			e = s.X
		}
		s, ok := e.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		id, ok := s.X.(*ast.Ident)
		return ok && names[id.Name] == pkg && s.Sel.Name == sel
	}
	isServer := func(e ast.Expr) bool { return is(e, "net/http", "Server") }
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		hit := false
		switch n := n.(type) {
		case *ast.CompositeLit:
			switch typ := n.Type.(type) {
			case *ast.ArrayType:
				hit = isServer(typ.Elt) && len(n.Elts) > 0
			case *ast.MapType:
				hit = isServer(typ.Value) && len(n.Elts) > 0
			default:
				hit = isServer(n.Type)
			}
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "new" && len(n.Args) == 1 {
				hit = isServer(n.Args[0])
			}
			for _, fn := range []string{"ListenAndServe", "ListenAndServeTLS", "Serve", "ServeTLS"} {
				hit = hit || is(n.Fun, "net/http", fn)
			}
			for _, fn := range []string{"NewServer", "NewUnstartedServer", "NewTLSServer"} {
				hit = hit || is(n.Fun, "net/http/httptest", fn)
			}
		}
		if hit {
			found = append(found, fset.Position(n.Pos()).String())
		}
		return true
	})
	return found
}
