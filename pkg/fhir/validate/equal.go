package validate

// equalValue reports whether v is exactly want, as fixed[x] requires:
// same primitives, same members (in any order), same items in order.
func equalValue(want, v *value) bool {
	if want == nil || v == nil || want.kind != v.kind {
		return false
	}
	switch want.kind {
	case kObject:
		if len(want.kids) != len(v.kids) {
			return false
		}
		for i := range want.kids {
			if !equalValue(&want.kids[i].val, v.get(want.kids[i].key)) {
				return false
			}
		}
		return true
	case kArray:
		if len(want.kids) != len(v.kids) {
			return false
		}
		for i := range want.kids {
			if !equalValue(&want.kids[i].val, &v.kids[i].val) {
				return false
			}
		}
		return true
	}
	return want.str == v.str
}

// matchPattern reports whether v holds pattern, as pattern[x] requires:
// every member of the pattern present with a matching value, every item of
// a pattern array matched by some item of v's array.
func matchPattern(pattern, v *value) bool {
	if pattern == nil || v == nil || pattern.kind != v.kind {
		return false
	}
	switch pattern.kind {
	case kObject:
		for i := range pattern.kids {
			if !matchPattern(&pattern.kids[i].val, v.get(pattern.kids[i].key)) {
				return false
			}
		}
		return true
	case kArray:
		for i := range pattern.kids {
			found := false
			for j := range v.kids {
				if matchPattern(&pattern.kids[i].val, &v.kids[j].val) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	return pattern.str == v.str
}
