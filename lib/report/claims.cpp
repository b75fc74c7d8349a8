#include "report/claims.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace normexp::report {

namespace {

// Two decimals, as the tables print; small magnitudes (a relative change of 5e-6) keep two
// significant digits instead of printing as 0.00.
std::string num(double x) {
  if (x != 0 && std::abs(x) < 0.01) return fmt::format("{:.2g}", x);
  return fmt::format("{:.2f}", x);
}

// The seeds' spread, with rounding-level differences counted as none. A task that no seed
// changes (file 002's Exp. 1 draws its data from task.data_seed and starts from a fixed grid)
// gives n equal runs up to summation order, ~1e-16 relative; dividing by that spread would
// call any difference significant (t ~ 1e16).
double spread(const Stats& s) {
  return s.std <= 1e-9 * std::abs(s.mean) ? 0.0 : s.std;
}

// A cell as the evidence names it. Diverged runs have no value to average, so the statistics
// rest on the seeds that survived; they are counted here, so that a comparison with one
// surviving seed of four does not read like a clean result.
std::string cell_text(const std::string& name, const CellResult& c) {
  const Stats& s = c.stats;
  const auto it = c.other.find("diverged");
  const int diverged = it == c.other.end() ? 0 : it->second;
  const std::string lost = diverged > 0 ? fmt::format(", +{} diverged", diverged) : "";
  if (s.n == 0) return diverged > 0 ? fmt::format("{} — ({} diverged)", name, diverged)
                                    : fmt::format("{} —", name);
  if (s.n == 1) return fmt::format("{} {} (n = 1{})", name, num(s.mean), lost);
  if (spread(s) == 0)
    return fmt::format("{} {} (n = {}, all equal{})", name, num(s.mean), s.n, lost);
  return fmt::format("{} {} ± {} (n = {}{})", name, num(s.mean), num(s.std), s.n, lost);
}

// Welch's t of mean(a) - k·mean(b); nullopt without two seeds on each side or with no spread.
std::optional<double> welch_t(const Stats& a, const Stats& b, double k = 1) {
  if (a.n < 2 || b.n < 2) return std::nullopt;
  const double sa = spread(a), sb = spread(b);
  const double se = std::sqrt(sa * sa / a.n + k * k * sb * sb / b.n);
  if (se == 0) return std::nullopt;
  return (a.mean - k * b.mean) / se;
}

// One-sample t of mean(a) - threshold.
std::optional<double> one_sample_t(const Stats& a, double threshold) {
  if (a.n < 2 || spread(a) == 0) return std::nullopt;
  return (a.mean - threshold) / (spread(a) / std::sqrt(static_cast<double>(a.n)));
}

// Why no t was computed: too few seeds, or seeds that all gave the same value.
std::string no_t_reason(const Stats& a, const Stats* b) {
  const bool few = a.n < 2 || (b && b->n < 2);
  if (few)
    return b ? "seed noise not estimated (fewer than 2 seeds on a side)"
             : "seed noise not estimated (fewer than 2 seeds)";
  return b ? "no seed-to-seed spread on either side: nothing to weigh the difference against"
           : "no seed-to-seed spread: nothing to weigh the difference against";
}

// How a side is named in the evidence: by what it fixes.
std::string side_name(const ClaimSide& s) {
  if (s.row.empty()) return s.column;
  if (s.column.empty()) return s.row;
  return s.row + "/" + s.column;
}

std::string label_of(const std::vector<Axis>& axes, const std::string& id) {
  for (const auto& a : axes)
    if (a.id == id) return a.label;
  return id;
}

// The cell pairs a claim compares: one per row (a side names a column), per column (a side
// names a row), or the single pair of cells.
struct Pair {
  std::string label;
  const CellResult* a = nullptr;
  const CellResult* b = nullptr;  // null for a threshold claim
};

std::vector<Pair> pairs_of(const Claim& c, const Report& r) {
  const TableSpec& spec = *r.spec;
  const bool threshold = c.b.empty();
  auto listed = [](const std::vector<std::string>& only, const std::string& id) {
    return only.empty() || std::find(only.begin(), only.end(), id) != only.end();
  };
  std::vector<Pair> out;
  auto add = [&](const std::string& label, const std::string& ar, const std::string& ac,
                 const std::string& br, const std::string& bc) {
    Pair p{label, r.find(ar, ac), threshold ? nullptr : r.find(br, bc)};
    if (p.a && (threshold || p.b)) out.push_back(p);
  };
  if (c.a.row.empty()) {
    for (const auto& row : spec.rows)
      if (listed(c.rows, row.id)) add(row.label, row.id, c.a.column, row.id, c.b.column);
  } else if (c.a.column.empty()) {
    for (const auto& col : spec.columns)
      if (listed(c.columns, col.id)) add(col.label, c.a.row, col.id, c.b.row, col.id);
  } else {
    add(label_of(spec.columns, c.a.column), c.a.row, c.a.column, c.b.row, c.b.column);
  }
  return out;
}

const char* cmp(bool ok, const char* yes, const char* no) { return ok ? yes : no; }

}  // namespace

std::string describe_claim(const Claim& c) {
  const std::string a = side_name(c.a), b = side_name(c.b);
  const std::string v = fmt::format("{}", c.value);
  std::string what;
  if (c.b.empty()) {
    const char* op = c.kind == "within"     ? "|·| at most"
                     : c.kind == "at_most"  ? "at most"
                     : c.kind == "at_least" ? "at least"
                     : c.kind == "below"    ? "below"
                                            : "above";
    what = fmt::format("{} {} {}", a, op, v);
  } else if (c.kind == "within") {
    what = fmt::format("{} within {} of {}", a, v, b);
  } else if (c.kind == "at_most") {
    what = fmt::format("{} at most {} above {}", a, v, b);
  } else if (c.kind == "at_least") {
    what = fmt::format("{} at least {} above {}", a, v, b);
  } else if (c.kind == "ratio_at_least") {
    what = fmt::format("{} / {} at least {}", a, b, v);
  } else {  // below, above
    what = c.value == 0 ? fmt::format("{} {} {}", a, c.kind, b)
                        : fmt::format("{} − {} {} {}", a, b, c.kind, v);
  }
  if (!c.rows.empty()) what += fmt::format(" (rows {})", fmt::join(c.rows, ", "));
  if (!c.columns.empty()) what += fmt::format(" (columns {})", fmt::join(c.columns, ", "));
  return what;
}

std::vector<ClaimVerdict> judge_claims(const Report& report) {
  std::vector<ClaimVerdict> out;
  for (const auto& claim : report.spec->claims) {
    ClaimVerdict v;
    v.claim = &claim;
    bool missing = false, failed = false, noisy = false;
    const auto pairs = pairs_of(claim, report);
    const double k = claim.value;
    const std::string vs = fmt::format("{}", k);
    for (const auto& p : pairs) {
      const Stats& a = p.a->stats;
      std::string line = fmt::format("{}: {}", p.label, cell_text(side_name(claim.a), *p.a));
      if (p.b) line += " vs " + cell_text(side_name(claim.b), *p.b);
      if (a.n == 0 || (p.b && p.b->stats.n == 0)) {
        missing = true;
        v.evidence.push_back(line + ": no completed run");
        continue;
      }
      bool ok = false;
      std::optional<double> t;
      std::string t_of = "Welch t";
      if (!p.b) {  // a against the threshold
        const double x = a.mean;
        if (claim.kind == "within") ok = std::abs(x) <= k;
        else if (claim.kind == "at_most") ok = x <= k;
        else if (claim.kind == "at_least") ok = x >= k;
        else if (claim.kind == "below") ok = x < k;
        else ok = x > k;
        const char* op = claim.kind == "within"     ? cmp(ok, "|·| <=", "|·| >")
                         : claim.kind == "at_most"  ? cmp(ok, "<=", ">")
                         : claim.kind == "at_least" ? cmp(ok, ">=", "<")
                         : claim.kind == "below"    ? cmp(ok, "<", ">=")
                                                    : cmp(ok, ">", "<=");
        line += fmt::format(": {} {} {}", num(x), op, vs);
        t = one_sample_t(a, claim.kind == "within" ? (x < 0 ? -k : k) : k);
        t_of = fmt::format("t of the mean against {}", vs);
      } else if (claim.kind == "ratio_at_least") {
        const Stats& b = p.b->stats;
        if (b.mean <= 0) {
          line += fmt::format(": ratio undefined ({} is not positive)", side_name(claim.b));
        } else {
          const double ratio = a.mean / b.mean;
          ok = ratio >= k;
          line += fmt::format(": ratio {} {} {}", num(ratio), ok ? ">=" : "<", vs);
          t = welch_t(a, b, k);
          t_of = fmt::format("Welch t of a − {}·b", vs);
        }
      } else {
        const double d = a.mean - p.b->stats.mean;
        if (claim.kind == "within") {
          ok = std::abs(d) <= k;
          line += fmt::format(": |difference| {} {} {}", num(std::abs(d)), ok ? "<=" : ">", vs);
        } else if (claim.kind == "at_most") {
          ok = d <= k;
          line += fmt::format(": difference {:+.2f} {} {}", d, ok ? "<=" : ">", vs);
        } else if (claim.kind == "at_least") {
          ok = d >= k;
          line += fmt::format(": difference {:+.2f} {} {}", d, ok ? ">=" : "<", vs);
        } else if (claim.kind == "below") {
          ok = d < k;
          line += k == 0 ? fmt::format(": difference {:+.2f} ({})", d, ok ? "below" : "not below")
                         : fmt::format(": difference {:+.2f} {} {}", d, ok ? "<" : ">=", vs);
        } else {
          ok = d > k;
          line += k == 0 ? fmt::format(": difference {:+.2f} ({})", d, ok ? "above" : "not above")
                         : fmt::format(": difference {:+.2f} {} {}", d, ok ? ">" : "<=", vs);
        }
        t = welch_t(a, p.b->stats);
      }
      if (t)
        line += fmt::format("; {} {:+.1f}: the difference {} the seed noise", t_of, *t,
                            std::abs(*t) > 2 ? "exceeds" : "is within");
      else
        line += "; " + no_t_reason(a, p.b ? &p.b->stats : nullptr);
      // Where t tests the claim's own inequality (a threshold, a ratio, "a below/above b"),
      // means that point the claimed way by less than the seed noise do not establish it.
      // (The tolerance kinds, "within" and a difference of at most/at least k, are about
      // closeness: their t is of the difference against 0, not against k.)
      const bool t_tests_claim = !p.b ? claim.kind != "within"
                                      : claim.kind == "ratio_at_least" ||
                                            ((claim.kind == "below" || claim.kind == "above") && k == 0);
      if (ok && t && t_tests_claim && std::abs(*t) <= 2) noisy = true;
      failed = failed || !ok;
      v.evidence.push_back(line);
    }
    v.verdict = pairs.empty() ? "not enough runs"
                : failed      ? "does not hold"
                : missing     ? "not enough runs"
                : noisy       ? "within the seed noise"
                              : "holds";
    out.push_back(std::move(v));
  }
  return out;
}

std::string claims_note() {
  return "With two or more seeds, |t| > 2 is taken as a difference beyond the seed-to-seed "
         "noise (a rule of thumb, about 95 % for many seeds): Welch's t between two cells (of "
         "a − k·b for a ratio), the one-sample t against a threshold. \"within the seed "
         "noise\": the means point the claimed way, but by less than that.\n";
}

std::string render_claims(const std::vector<ClaimVerdict>& verdicts, bool heading) {
  if (verdicts.empty()) return "";
  std::string out = heading ? "\n### Claims\n\n" : "";
  for (const auto& v : verdicts) {
    const Claim& c = *v.claim;
    out += fmt::format("- **{}** ({}{}): \"{}\" — **{}**\n", c.id,
                       c.section.empty() ? "" : c.section + ", ", describe_claim(c), c.text,
                       v.verdict);
    for (const auto& e : v.evidence) out += "  - " + e + "\n";
  }
  if (heading) out += "\n" + claims_note();
  return out;
}

}  // namespace normexp::report
