package telemetry

// destination identifies the workload that answered: the unit whose proxy reports as
// reporter "destination".
type destination struct {
	service, workload, version string
}

// Select returns the rows that count each request once. Both ends of a call between two
// sidecars report it, so rows are chosen per destination (service, workload, version) over
// everything given:
//
//   - a destination whose proxy reported (reporter "destination") is counted from its own
//     reports, which see every request that reached it, whoever called;
//   - the caller's reports (reporter "source") count only for destinations without such
//     reports (no sidecar, out of the mesh, not yet reporting), and for requests that never
//     reached the destination (response flags such as FI, UH, UF, NR: see NotForwarded),
//     which only the caller saw.
//
// Rows of any other reporter are dropped. Select returns a new slice, in the order of rows.
func Select(rows []Row) []Row {
	reported := map[destination]bool{}
	for i := range rows {
		s := &rows[i].Series
		if s.Reporter == ReporterDestination {
			reported[destination{s.DestinationService, s.DestinationWorkload, s.DestinationVersion}] = true
		}
	}
	out := rows[:0:0]
	for _, r := range rows {
		s := &r.Series
		switch s.Reporter {
		case ReporterDestination:
		case ReporterSource:
			if reported[destination{s.DestinationService, s.DestinationWorkload, s.DestinationVersion}] && !NotForwarded(s.ResponseFlags) {
				continue
			}
		default:
			continue
		}
		out = append(out, r)
	}
	return out
}
