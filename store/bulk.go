package store

import (
	"context"
	"reflect"
	"sync"
	"time"

	"gorm.io/gorm/schema"

	"github.com/pace/userphone"
)

// BulkTable is what a bulk loader (COPY, multi-row INSERT) needs of one
// of the store's tables: its name, and its columns in the order of the
// values that UserValues, ChangeValues and EventValues return. Both come
// from the GORM models, so a column added to a model reaches the loader
// without a copy of the schema there; columns the database fills itself
// (phone_events' id) are left out.
type BulkTable struct {
	Name    string
	Columns []string
}

// bulkModel is a model parsed for bulk loading: its table, and the fields
// behind the table's columns.
type bulkModel struct {
	table  BulkTable
	fields []*schema.Field
}

// The models are fixed at compile time, so they are parsed once.
var bulkModels = sync.OnceValue(func() [3]*bulkModel {
	return [3]*bulkModel{parseBulkModel(&userRow{}), parseBulkModel(&changeRow{}), parseBulkModel(&eventRow{})}
})

// BulkUsers describes the users table.
func BulkUsers() BulkTable { return bulkModels()[0].copyOfTable() }

// BulkChanges describes the phone_changes table.
func BulkChanges() BulkTable { return bulkModels()[1].copyOfTable() }

// BulkEvents describes the phone_events table.
func BulkEvents() BulkTable { return bulkModels()[2].copyOfTable() }

// copyOfTable lets the caller change the columns without changing the
// store's.
func (m *bulkModel) copyOfTable() BulkTable {
	return BulkTable{Name: m.table.Name, Columns: append([]string(nil), m.table.Columns...)}
}

// parseBulkModel parses a model as GORM does with its default naming,
// which the store's queries rely on too.
func parseBulkModel(model any) *bulkModel {
	s, err := schema.Parse(model, &sync.Map{}, schema.NamingStrategy{})
	if err != nil {
		// A model GORM cannot parse breaks every query of the store: a
		// programming error, which the store's tests show at once.
		panic("store: parse the model of a bulk table: " + err.Error())
	}
	m := &bulkModel{table: BulkTable{Name: s.Table}}
	for _, f := range s.Fields {
		if f.DBName == "" || f.AutoIncrement {
			continue
		}
		m.table.Columns = append(m.table.Columns, f.DBName)
		m.fields = append(m.fields, f)
	}
	return m
}

// values reads row's fields in the table's column order, as plain values
// that both COPY and database/sql take: a nil pointer or byte slice is
// NULL, any other pointer the value it points to.
func (m *bulkModel) values(row any) []any {
	rv := reflect.ValueOf(row)
	out := make([]any, len(m.fields))
	for i, f := range m.fields {
		v, _ := f.ValueOf(context.Background(), rv)
		out[i] = plainValue(v)
	}
	return out
}

func plainValue(v any) any {
	rv := reflect.ValueOf(v)
	switch {
	case !rv.IsValid():
		return nil
	case rv.Kind() == reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return rv.Elem().Interface()
	case rv.Kind() == reflect.Slice && rv.IsNil():
		return nil
	}
	return v
}

// UserValues is u's row in BulkUsers' column order. The domain's user
// carries no times of its own, so the row's are given.
func UserValues(u userphone.User, createdAt, updatedAt time.Time) []any {
	row := userRow{
		ID: u.ID, Email: u.Email, Locale: u.Locale, PhoneVerifiedAt: utcPtr(u.PhoneVerifiedAt),
		CreatedAt: dbTime(createdAt), UpdatedAt: dbTime(updatedAt),
	}
	if u.PhoneNumber != "" {
		row.PhoneNumber = &u.PhoneNumber
	}
	return bulkModels()[0].values(row)
}

// ChangeValues is c's row at version in BulkChanges' column order. The
// version guards updates (see SaveChange) and is not part of the domain.
func ChangeValues(c *userphone.PhoneChange, version int) []any {
	row := changeRowOf(c)
	row.Version = version
	return bulkModels()[1].values(row)
}

// EventValues is e's row in BulkEvents' column order, without the id the
// database assigns.
func EventValues(e userphone.Event) []any {
	return bulkModels()[2].values(eventRowOf(e))
}
