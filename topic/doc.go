// Package topic implements MQTT Topic Names and Topic Filters: their
// validation, matching one against the other, the subscription index a
// broker routes with (Tree) and the index of retained messages (Retained).
// It imports only the standard library.
//
// # Names, filters and levels
//
// A Topic Name (in PUBLISH) and a Topic Filter (in SUBSCRIBE) are divided
// into levels by '/'; a level may be empty ("/finance" has two levels, the
// first empty). A filter may use the wildcards '+', one whole level, and
// '#', the last level, matching its parent and every level below it. A
// filter starting with a wildcard does not match a name starting with '$',
// such as "$SYS/...". Matching is byte for byte and case sensitive.
//
//   - ValidName, ValidFilter and ParseShared check names and filters, with
//     optional server Limits on length and depth; errors are fixed values.
//   - Match tests one filter against one name.
//   - Tree indexes subscriptions by filter: Match finds the ones that match
//     a name, MatchShared the groups of Shared Subscriptions
//     ("$share/{ShareName}/{filter}"), and Group.Pick chooses one member of
//     a group in round-robin.
//   - Retained indexes retained messages by name: Match finds the ones that
//     match a filter, walking only the branches the filter can reach.
//
// The hot paths (ValidName, Match, Tree.Match, Tree.MatchShared,
// Retained.Match) allocate nothing. Tree and Retained are safe for concurrent
// use, with read-mostly locking; their callbacks run under a read lock.
// Strings passed to Add, AddShared and Set are copied, so they may alias a
// decoded packet's buffer.
//
// # Specification
//
// Comments cite the normative statements of MQTT 5.0 (OASIS Standard, 7
// March 2019), sections 4.7 and 4.8. MQTT 3.1.1 states the same rules for
// names and filters, numbered differently: its [MQTT-4.7.1-1], [MQTT-4.7.1-2]
// and [MQTT-4.7.1-3] are 5.0's [MQTT-4.7.0-1], [MQTT-4.7.1-1] and
// [MQTT-4.7.1-2]. Shared Subscriptions exist only in 5.0.
package topic
