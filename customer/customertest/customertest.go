// Package customertest helps the tests of the packages that keep a shape of
// a contact of their own (a wire type, a CRM row, a script's customer)
// check that it stays the customer.Profile it is built from.
package customertest

import (
	"reflect"
	"testing"

	"github.com/acme/lifecycle/customer"
)

// RequireProfileFields fails t unless T (a struct) has every field of
// customer.Profile — by the same name, or rename[name], with the same type
// and, when T's field has a JSON tag, the same one — and profile, given a T
// whose profile fields each hold a value of their own, returns exactly
// those values. A new field of the profile then fails the test of every
// shape that does not carry it.
func RequireProfileFields[T any](t *testing.T, profile func(T) customer.Profile, rename map[string]string) {
	t.Helper()
	var v T
	rv := reflect.ValueOf(&v).Elem()
	if rv.Kind() != reflect.Struct {
		t.Fatalf("%T is not a struct", v)
	}
	pt := reflect.TypeFor[customer.Profile]()
	want := reflect.New(pt).Elem()
	for i := range pt.NumField() {
		pf := pt.Field(i)
		name := pf.Name
		if r, ok := rename[name]; ok {
			name = r
		}
		sf, ok := rv.Type().FieldByName(name)
		if !ok {
			t.Fatalf("%T has no field %s for customer.Profile.%s", v, name, pf.Name)
		}
		if sf.Type != pf.Type {
			t.Fatalf("%T.%s is a %s; customer.Profile.%s is a %s", v, name, sf.Type, pf.Name, pf.Type)
		}
		if tag, ok := sf.Tag.Lookup("json"); ok && name == pf.Name && tag != pf.Tag.Get("json") {
			t.Errorf("%T.%s has JSON tag %q; customer.Profile.%s has %q", v, name, tag, pf.Name, pf.Tag.Get("json"))
		}
		var val reflect.Value
		switch pf.Type.Kind() {
		case reflect.String:
			val = reflect.ValueOf(pf.Name + "-value")
		case reflect.Int:
			val = reflect.ValueOf(i + 1)
		default:
			t.Fatalf("customer.Profile.%s: a %s; teach RequireProfileFields its kind", pf.Name, pf.Type)
		}
		rv.FieldByIndex(sf.Index).Set(val)
		want.Field(i).Set(val)
	}
	if got := profile(v); got != want.Interface().(customer.Profile) {
		t.Errorf("the profile of %T drops or swaps fields:\n got %+v\nwant %+v", v, got, want.Interface())
	}
}
