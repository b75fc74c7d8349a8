#pragma once
// The paper's claims about a table (TableSpec::claims) judged from the runs that fill it:
// "holds", "does not hold", "within the seed noise" (the means point the claimed way, by less
// than the seeds vary) or "not enough runs", with the numbers that decided it. With at
// least two seeds on every side, a t statistic says whether the result exceeds the
// seed-to-seed noise: |t| > 2, a rule of thumb (about 95 % two-sided for many seeds; with 2-3
// seeds a stricter bound would be needed), stated as such in the output. Between two cells it
// is Welch's t of the difference of the means; against a threshold, the one-sample t of the
// mean minus the threshold; for a ratio a/b >= k, Welch's t of a - k·b.

#include <string>
#include <vector>

#include "report/report.h"

namespace normexp::report {

struct ClaimVerdict {
  const Claim* claim = nullptr;
  std::string verdict;  // holds | does not hold | within the seed noise | not enough runs
  std::vector<std::string> evidence;  // one line per row (or column, or cell pair) compared
};

std::vector<ClaimVerdict> judge_claims(const Report& report);

// The predicate in words, e.g. "cwo at most 0.5 above bn", "plain/lmax / bn/lmax at least 5".
std::string describe_claim(const Claim& c);

// Markdown: one item per claim with its evidence. With `heading`, a "### Claims" heading
// before and claims_note() after them (a report's tail); without, the items alone (listings
// of many specs print the note once).
std::string render_claims(const std::vector<ClaimVerdict>& verdicts, bool heading = true);
std::string claims_note();

}  // namespace normexp::report
