#pragma once
// The paper's claims about a table (TableSpec::claims) judged from the runs that fill it:
// "holds", "does not hold" or "not enough runs", with the numbers that decided it. With at
// least two seeds on both sides of a comparison, Welch's t of the difference of the means says
// whether the difference exceeds the seed-to-seed noise: |t| > 2, a rule of thumb (about 95 %
// two-sided for many seeds; with 2-3 seeds a stricter bound would be needed), stated as such
// in the output.

#include <optional>
#include <string>
#include <vector>

#include "report/report.h"

namespace normexp::report {

struct ClaimVerdict {
  const Claim* claim = nullptr;
  std::string verdict;                // holds | does not hold | not enough runs
  std::vector<std::string> evidence;  // one line per row compared
};

std::vector<ClaimVerdict> judge_claims(const Report& report);
// Markdown: "### Claims" and one item per claim with its evidence.
std::string render_claims(const std::vector<ClaimVerdict>& verdicts);

}  // namespace normexp::report
