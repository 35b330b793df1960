package validate

import (
	"fmt"
	"strings"
)

// indexBundle records the entries of a Bundle (fullUrl, type, id) for
// reference resolution, checks that fullUrls are unique, and applies the
// MessageDefinition of the MessageHeader's event: the focus entries get the
// profile it names for their type, and their number is checked.
func (w *walker) indexBundle(root *value) {
	entries := root.get("entry")
	if entries == nil || entries.kind != kArray {
		return
	}
	for i := range entries.kids {
		e := &entries.kids[i].val
		info := entryInfo{}
		info.fullURL, _ = e.getString("fullUrl")
		if r := e.get("resource"); r != nil && r.kind == kObject {
			info.res = r
			info.rt, _ = r.getString("resourceType")
			info.id, _ = r.getString("id")
		}
		if info.fullURL != "" {
			for j := range w.entries {
				if w.entries[j].fullURL == info.fullURL {
					w.late = append(w.late, w.at(fmt.Sprintf("Bundle.entry[%d].fullUrl", i), "error", "invariant",
						fmt.Sprintf("fullUrl %s déjà porté par Bundle.entry[%d] (bdl-7)", info.fullURL, j),
						fmt.Sprintf("fullUrl %s already used by Bundle.entry[%d] (bdl-7)", info.fullURL, j)))
					break
				}
			}
			if strings.HasPrefix(info.fullURL, "urn:uuid:") && !validUUID(info.fullURL) {
				w.late = append(w.late, w.at(fmt.Sprintf("Bundle.entry[%d].fullUrl", i), "error", "value",
					"fullUrl urn:uuid: mal formé (36 caractères hexadécimaux minuscules attendus)",
					"malformed urn:uuid: fullUrl (36 lower-case hexadecimal characters expected)"))
			}
		}
		w.entries = append(w.entries, info)
	}
	if len(w.entries) == 0 || w.entries[0].rt != "MessageHeader" {
		return // the Bundle profile's slicing reports it
	}
	mh := w.entries[0].res
	ev := mh.get("eventCoding")
	system, _ := ev.getString("system")
	code, _ := ev.getString("code")
	md := w.v.msgDefs[system+"|"+code]
	if md == nil {
		return // an unknown event is reported by the binding
	}
	focus := mh.get("focus")
	counts := make([]int, len(md.focus))
	if focus != nil && focus.kind == kArray {
		for i := range focus.kids {
			ref, _ := focus.kids[i].val.getString("reference")
			j := w.resolve(ref, mh)
			if j < 0 || w.entries[j].res == nil {
				continue // resolveRefs reports it
			}
			rt := w.entries[j].rt
			k := -1
			for n, f := range md.focus {
				if f.code == rt {
					k = n
					break
				}
			}
			if k < 0 {
				w.late = append(w.late, w.at(fmt.Sprintf("Bundle.entry[0].resource.focus[%d]", i), "error", "invariant",
					fmt.Sprintf("L'événement %s ne porte pas sur un(e) %s", md.event, rt),
					fmt.Sprintf("Event %s is not about a %s", md.event, rt)))
				continue
			}
			counts[k]++
			if d := md.focus[k].def; d != nil {
				if w.override == nil {
					w.override = map[*value]*typeDef{}
				}
				w.override[w.entries[j].res] = d
			}
		}
	}
	for k, f := range md.focus {
		switch {
		case counts[k] < f.min:
			w.late = append(w.late, w.at("Bundle.entry[0].resource.focus", "error", "required",
				fmt.Sprintf("L'événement %s porte sur au moins %d %s présent(s) dans le Bundle (%d trouvé(s))", md.event, f.min, f.code, counts[k]),
				fmt.Sprintf("Event %s needs at least %d %s in the Bundle as focus (%d found)", md.event, f.min, f.code, counts[k])))
		case f.max >= 0 && counts[k] > f.max:
			w.late = append(w.late, w.at("Bundle.entry[0].resource.focus", "error", "invariant",
				fmt.Sprintf("L'événement %s porte sur au plus %d %s (%d trouvé(s))", md.event, f.max, f.code, counts[k]),
				fmt.Sprintf("Event %s takes at most %d %s as focus (%d found)", md.event, f.max, f.code, counts[k])))
		}
	}
}

// resolve returns the index of the entry a reference designates, or -1.
// from is the resource holding the reference; a relative reference in an
// entry whose fullUrl is absolute resolves against that base first.
func (w *walker) resolve(ref string, from *value) int {
	if ref == "" || strings.HasPrefix(ref, "#") {
		return -1
	}
	for i := range w.entries {
		if w.entries[i].fullURL == ref {
			return i
		}
	}
	if strings.HasPrefix(ref, "urn:") || strings.Contains(ref, "://") {
		return -1
	}
	typ, id, ok := relativeRef(ref)
	if !ok {
		return -1
	}
	for i := range w.entries {
		e := &w.entries[i]
		if e.rt == typ && e.id == id {
			return i
		}
		if strings.HasSuffix(e.fullURL, "/"+typ+"/"+id) {
			return i
		}
	}
	return -1
}

// relativeRef splits Type/id or Type/id/_history/version.
func relativeRef(ref string) (typ, id string, ok bool) {
	parts := strings.Split(ref, "/")
	if len(parts) != 2 && !(len(parts) == 4 && parts[2] == "_history" && parts[3] != "") {
		return "", "", false
	}
	typ, id = parts[0], parts[1]
	if typ == "" || typ[0] < 'A' || typ[0] > 'Z' {
		return "", "", false
	}
	if _, en := checkPrimitive(pID, id); en != "" {
		return "", "", false
	}
	return typ, id, true
}

// resolveRefs checks the references collected during the walk: their
// form, that those meant to resolve inside the Bundle (urn:uuid:, urn:oid:,
// Type/id) or the resource (#id) do, and that they designate a resource of
// a type the element allows.
func (w *walker) resolveRefs() {
	inBundle := len(w.entries) > 0
	for _, r := range w.refs {
		var typ string // the designated type, when known
		switch {
		case strings.HasPrefix(r.ref, "#"):
			id := r.ref[1:]
			if id == "" {
				continue // the container itself
			}
			found := false
			if c := r.res.get("contained"); c != nil && c.kind == kArray {
				for i := range c.kids {
					if cid, _ := c.kids[i].val.getString("id"); cid == id {
						typ, _ = c.kids[i].val.getString("resourceType")
						found = true
						break
					}
				}
			}
			if !found {
				w.late = append(w.late, w.at(r.expr, "error", "not-found",
					fmt.Sprintf("Référence %s : aucune ressource contenue (contained) ne porte cet id", r.ref),
					fmt.Sprintf("Reference %s: no contained resource has that id", r.ref)))
				continue
			}
		case strings.HasPrefix(r.ref, "urn:uuid:") || strings.HasPrefix(r.ref, "urn:oid:"):
			if !inBundle {
				continue
			}
			i := w.resolve(r.ref, r.res)
			if i < 0 {
				w.late = append(w.late, w.at(r.expr, "error", "not-found",
					fmt.Sprintf("Référence %s introuvable : aucune entrée du Bundle n'a ce fullUrl", r.ref),
					fmt.Sprintf("Reference %s does not resolve: no entry of the Bundle has that fullUrl", r.ref)))
				continue
			}
			typ = w.entries[i].rt
		case strings.Contains(r.ref, "://"):
			// An absolute URL may point outside the message; when an entry
			// has it, the target's type is checked.
			if i := w.resolve(r.ref, r.res); i >= 0 {
				typ = w.entries[i].rt
			} else if t, _, ok := relativeRef(lastTwo(r.ref)); ok {
				typ = t
			}
		default:
			t, _, ok := relativeRef(r.ref)
			if !ok {
				w.late = append(w.late, w.at(r.expr, "error", "value",
					fmt.Sprintf("Référence mal formée %q : urn:uuid:…, Type/id, #id ou URL absolue attendue", r.ref),
					fmt.Sprintf("Malformed reference %q: urn:uuid:…, Type/id, #id or an absolute URL expected", r.ref)))
				continue
			}
			typ = t
			if inBundle && w.resolve(r.ref, r.res) < 0 {
				w.late = append(w.late, w.at(r.expr, "error", "not-found",
					fmt.Sprintf("Référence %s introuvable : aucune entrée du Bundle n'est ce(tte) %s", r.ref, t),
					fmt.Sprintf("Reference %s does not resolve to an entry of the Bundle", r.ref)))
				continue
			}
		}
		if typ != "" && r.targets != nil && !contains(r.targets, typ) {
			w.late = append(w.late, w.at(r.expr, "error", "invalid",
				fmt.Sprintf("La référence désigne un(e) %s ; attendu : %s", typ, strings.Join(r.targets, " ou ")),
				fmt.Sprintf("The reference designates a %s; expected: %s", typ, strings.Join(r.targets, " or "))))
		}
	}
}

func lastTwo(url string) string {
	url = strings.TrimRight(url, "/")
	if i := strings.Index(url, "/_history/"); i >= 0 {
		url = url[:i]
	}
	j := strings.LastIndexByte(url, '/')
	if j <= 0 {
		return url
	}
	k := strings.LastIndexByte(url[:j], '/')
	return url[k+1:]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
