package test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Objects of the schema that the docs describe as one value (Kubernetes
// types and free-form files) rather than key by key.
var documentedWhole = map[string]bool{
	"agent.config":         true,
	"agent.updateStrategy": true,
	"carbon.config":        true,
	"reports.config":       true,
}

// Definitions of the schema that belong to the chart, documented key by key.
var chartDefinitions = map[string]bool{"monitor": true, "carbonMonitor": true}

// schemaLeaves lists the documented value paths of the schema: properties of
// closed objects, descending into the chart's own objects.
func schemaLeaves(t *testing.T) []string {
	t.Helper()
	var schema map[string]any
	if err := json.Unmarshal(readRepoFile(t, "helm/aiwatt/values.schema.json"), &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	defs, _ := schema["definitions"].(map[string]any)
	var leaves []string
	var walk func(prefix string, node map[string]any)
	walk = func(prefix string, node map[string]any) {
		props, _ := node["properties"].(map[string]any)
		for name, p := range props {
			path := strings.TrimPrefix(prefix+"."+name, ".")
			child, _ := p.(map[string]any)
			if ref, ok := child["$ref"].(string); ok {
				def := strings.TrimPrefix(ref, "#/definitions/")
				if chartDefinitions[def] {
					walk(path, defs[def].(map[string]any))
					continue
				}
			}
			if _, nested := child["properties"]; nested && child["additionalProperties"] == false && !documentedWhole[path] {
				walk(path, child)
				continue
			}
			leaves = append(leaves, path)
		}
	}
	walk("", schema)
	slices.Sort(leaves)
	return leaves
}

// lookup returns the value at a dotted path of a values tree.
func lookup(tree map[string]any, path string) (any, bool) {
	var cur any = tree
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Every value of the schema has a default in values.yaml and a row in the
// chart's README; every top-level key of values.yaml is in the schema (the
// schema's additionalProperties: false checks the rest on every render).
func TestValuesDocumented(t *testing.T) {
	leaves := schemaLeaves(t)
	if len(leaves) < 50 {
		t.Fatalf("only %d documented values found in the schema: %v", len(leaves), leaves)
	}
	var values map[string]any
	if err := yaml.Unmarshal(readRepoFile(t, "helm/aiwatt/values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	readme := string(readRepoFile(t, "helm/aiwatt/README.md"))
	_, section, ok := strings.Cut(readme, "\n## Values\n")
	if !ok {
		t.Fatal("helm/aiwatt/README.md has no \"## Values\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, leaf := range leaves {
		if leaf == "global" {
			continue // Helm's, for parent charts
		}
		if _, ok := lookup(values, leaf); !ok {
			t.Errorf("%s is in values.schema.json but has no default in values.yaml", leaf)
		}
		if !strings.Contains(section, "| `"+leaf+"` |") {
			t.Errorf("%s has no row in helm/aiwatt/README.md (| `%s` | type | default | description |)", leaf, leaf)
		}
	}
	// And no row of the values table names a value that does not exist.
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		rows++
		key, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
		if !slices.Contains(leaves, key) {
			t.Errorf("README documents %s, which is not a value of the chart", key)
		}
	}
	if rows == 0 {
		t.Error("the Values section of helm/aiwatt/README.md has no rows")
	}
}
