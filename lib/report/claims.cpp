#include "report/claims.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

namespace normexp::report {

namespace {

std::string cell_text(const std::string& column, const Stats& s) {
  if (s.n == 0) return fmt::format("{} —", column);
  if (s.n == 1) return fmt::format("{} {:.2f} (n = 1)", column, s.mean);
  return fmt::format("{} {:.2f} ± {:.2f} (n = {})", column, s.mean, s.std, s.n);
}

// Welch's t of mean(a) - mean(b); nullopt without two seeds on each side or with no spread.
std::optional<double> welch_t(const Stats& a, const Stats& b) {
  if (a.n < 2 || b.n < 2) return std::nullopt;
  const double se = std::sqrt(a.std * a.std / a.n + b.std * b.std / b.n);
  if (se == 0) return std::nullopt;
  return (a.mean - b.mean) / se;
}

}  // namespace

std::vector<ClaimVerdict> judge_claims(const Report& report) {
  std::vector<ClaimVerdict> out;
  for (const auto& claim : report.spec->claims) {
    ClaimVerdict v;
    v.claim = &claim;
    bool missing = false, failed = false;
    int compared = 0;
    for (const auto& row : report.spec->rows) {
      if (!claim.rows.empty() &&
          std::find(claim.rows.begin(), claim.rows.end(), row.id) == claim.rows.end())
        continue;
      const CellResult* a = report.find(row.id, claim.a);
      const CellResult* b = report.find(row.id, claim.b);
      if (!a || !b) continue;
      ++compared;
      std::string line = fmt::format("{}: {} vs {}", row.label, cell_text(claim.a, a->stats),
                                     cell_text(claim.b, b->stats));
      if (a->stats.n == 0 || b->stats.n == 0) {
        missing = true;
        v.evidence.push_back(line + ": no completed run");
        continue;
      }
      const double d = a->stats.mean - b->stats.mean;
      bool ok = false;
      if (claim.kind == "within") {
        ok = std::abs(d) <= claim.value;
        line += fmt::format(": |difference| {:.2f} {} {}", std::abs(d), ok ? "<=" : ">", claim.value);
      } else if (claim.kind == "at_most") {
        ok = d <= claim.value;
        line += fmt::format(": difference {:+.2f} {} {}", d, ok ? "<=" : ">", claim.value);
      } else if (claim.kind == "below") {
        ok = d < 0;
        line += fmt::format(": difference {:+.2f} ({})", d, ok ? "below" : "not below");
      } else {
        ok = d > 0;
        line += fmt::format(": difference {:+.2f} ({})", d, ok ? "above" : "not above");
      }
      if (const auto t = welch_t(a->stats, b->stats))
        line += fmt::format("; Welch t {:+.1f}: the difference {} the seed noise", *t,
                            std::abs(*t) > 2 ? "exceeds" : "is within");
      else
        line += "; seed noise not estimated (fewer than 2 seeds on a side)";
      failed = failed || !ok;
      v.evidence.push_back(line);
    }
    v.verdict = compared == 0 ? "not enough runs"
                : failed      ? "does not hold"
                : missing     ? "not enough runs"
                              : "holds";
    out.push_back(std::move(v));
  }
  return out;
}

std::string render_claims(const std::vector<ClaimVerdict>& verdicts) {
  if (verdicts.empty()) return "";
  std::string out = "\n### Claims\n\n";
  for (const auto& v : verdicts) {
    const Claim& c = *v.claim;
    out += fmt::format("- **{}** ({}{}): \"{}\" — **{}**\n", c.id,
                       c.section.empty() ? "" : c.section + ", ",
                       c.kind == "within"    ? fmt::format("{} within {} of {}", c.a, c.value, c.b)
                       : c.kind == "at_most" ? fmt::format("{} at most {} above {}", c.a, c.value, c.b)
                                             : fmt::format("{} {} {}", c.a, c.kind, c.b),
                       c.text, v.verdict);
    for (const auto& e : v.evidence) out += "  - " + e + "\n";
  }
  out += "\nWith two or more seeds on both sides, |Welch t| > 2 is taken as a difference "
         "beyond the seed-to-seed noise (a rule of thumb, about 95 % for many seeds).\n";
  return out;
}

}  // namespace normexp::report
