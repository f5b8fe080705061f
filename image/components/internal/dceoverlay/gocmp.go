package dceoverlay

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
)

// go-cmp's package that names types, its file, and the function whose
// interface case lists methods through reflect.Type.Method.
const (
	goCmpValue    = "github.com/google/go-cmp/cmp/internal/value"
	goCmpNameFile = "cmp/internal/value/name.go"
	goCmpFunc     = "appendTypeName"
)

// goCmpInterface replaces the body of appendTypeName's `case
// reflect.Interface:`. reflect's String spells the methods of an unnamed
// interface as Go does; only the package qualification of a qualified name
// is lost, in diffs of values whose type is an unnamed non-empty interface.
const goCmpInterface = `
		// cairn: by reflect's String, not method by method through
		// reflect.Type.Method, which would keep every exported method of
		// the binary alive (internal/dceoverlay).
		if t.NumMethod() == 0 {
			b = append(b, "interface{}"...)
		} else {
			b = append(b, t.String()...)
		}`

// GoCmpName returns go-cmp's name.go (src, read from file) with the body of
// appendTypeName's reflect.Interface case replaced by goCmpInterface.
func GoCmpName(file string, src []byte) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var clause *ast.CaseClause
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != goCmpFunc || fn.Body == nil {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			c, ok := n.(*ast.CaseClause)
			if !ok || len(c.List) != 1 {
				return true
			}
			if sel, ok := c.List[0].(*ast.SelectorExpr); ok && sel.Sel.Name == "Interface" {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "reflect" {
					clause = c
				}
			}
			return clause == nil
		})
	}
	if clause == nil || len(clause.Body) == 0 {
		return nil, fmt.Errorf("%s: no `case reflect.Interface:` in %s; this go-cmp version needs a new look (internal/dceoverlay)", file, goCmpFunc)
	}
	start := fset.Position(clause.Colon).Offset + 1
	end := fset.Position(clause.Body[len(clause.Body)-1].End()).Offset
	out := append(append(append([]byte(nil), src[:start]...), goCmpInterface...), src[end:]...)
	if _, err := parser.ParseFile(token.NewFileSet(), file, out, parser.SkipObjectResolution); err != nil {
		return nil, fmt.Errorf("%s after the change: %w", file, err)
	}
	return out, nil
}
