package config

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one problem found in a resource: where it is, as a path such as
// "documents[2].spec.http[0].route[1].weight", and what is wrong and what to do about it.
// An empty Path means the problem concerns the input as a whole.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error returns "path: message", or only the message when Path is empty.
func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// Errors is every problem found at once, in the order they were found. ParseYAML returns it as
// its error and Validate returns it directly; a nil or empty Errors means no problem.
type Errors []FieldError

// Error returns one FieldError per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns es as an error, or nil when es is empty. It spares callers the typed-nil trap
// of returning an empty Errors through an error interface.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// maxErrors bounds what one request can make the server say: past it, the rest is summed up
// in one last error.
const maxErrors = 1000

func (es *Errors) add(path, message string) {
	switch n := len(*es); {
	case n < maxErrors:
		*es = append(*es, FieldError{Path: path, Message: message})
	case n == maxErrors:
		*es = append(*es, FieldError{Message: fmt.Sprintf("more than %d problems: fix these and try again", maxErrors)})
	}
}

// Paths are built the way users read them: fields joined by dots, list indexes and map keys
// in brackets, e.g. spec.http[0].match[0].headers[end-user].exact.

func field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func mapKey(path, key string) string {
	return path + "[" + key + "]"
}
