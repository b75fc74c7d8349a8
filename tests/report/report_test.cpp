// Reports over hand-written result folders (the real layout and real hashes), the table specs
// in configs/tables, plan output, and the sweep scripts through the real binary.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/test_support.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/gnuplot.h"
#include "registry/builtin.h"
#include "report/claims.h"
#include "report/report.h"

namespace normexp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSource = NORMEXP_SOURCE_DIR;

struct Shell {
  int code;
  std::string out;
};

Shell sh(const std::string& cmd) {
  Shell r{-1, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

const config::Schema& schema() { return registry::experiment_schema(); }

const char* kTiny = R"(name: tiny
data: {name: synthetic, classes: 3, train_size: 64, test_size: 32, resolution: 8}
model: {name: cnn9, width: 0.125}
norm: {name: cwo, noise: {schedule: constant, sigma: 0.1}}
optim: {lr: 0.05}
train: {epochs: 1, batch_size: 16, threads: 1, progress: none}
)";

// Title with % and _ to check LaTeX escaping; three cells over the noise level.
const char* kSpec = R"(title: "err_rate % tiny"
source: {paper: "004_test.txt", table: "Table 9"}
metric: final.test_err
best: lower
best_within: row
rows: [{id: r, label: "tiny_row"}]
columns: [{id: a, label: "σ 0.1"}, {id: b, label: "σ 0.2"}, {id: c, label: "σ 0.3"}]
cells:
  - {row: r, column: a, config: tiny.yaml, paper: 12.5, paper_mark: best}
  - {row: r, column: b, config: tiny.yaml, set: ["norm.noise.sigma=0.2"], paper: 14.0}
  - {row: r, column: c, config: tiny.yaml, set: ["norm.noise.sigma=0.3"], paper: null}
)";

class Fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.write("tiny.yaml", kTiny);
    spec_path_ = dir_.write("tiny_table.yaml", kSpec);
    root_ = dir_.path() / "results";
    hash_a_ = config::load_experiment(config_, {}, schema()).hash();
    hash_b_ = config::load_experiment(config_, {"norm.noise.sigma=0.2"}, schema()).hash();
    // Cell a: three completed seeds and a diverged one; cell b: one seed; cell c: nothing.
    write_run(hash_a_, 0, "completed", 10.0);
    write_run(hash_a_, 1, "completed", 12.0);
    write_run(hash_a_, 2, "completed", 17.0);
    write_run(hash_a_, 3, "diverged", std::nullopt);
    write_run(hash_b_, 0, "completed", 11.5);
    write_run("00000000deadbeef", 0, "completed", 50.0);  // matches no cell
  }

  void write_run(const std::string& hash, int seed, const std::string& status,
                 std::optional<double> err) {
    json history = json::array();
    std::string jsonl;
    for (int e = 1; e <= 2; ++e) {
      json h{{"epoch", e}, {"train_loss", 2.0 / e}, {"test_err", err.value_or(90.0) + 2 - e}};
      history.push_back(h);
      jsonl += h.dump() + "\n";
    }
    json m{{"name", "tiny"}, {"hash", hash}, {"seed", seed}, {"status", status},
           {"history", history}};
    m["final"] = err ? json{{"epoch", 2}, {"test_err", *err}} : json(nullptr);
    const std::string rel = "results/tiny/" + hash + "/seed" + std::to_string(seed) + "/";
    dir_.write(rel + "metrics.json", m.dump(2));
    dir_.write(rel + "history.jsonl", jsonl);
  }

  report::Report make(const report::TableSpec& spec, report::ReportOptions o = {}) {
    return report::build_report(spec, schema(), report::index_results(root_), o);
  }

  testing::TempDir dir_;
  fs::path config_, spec_path_, root_;
  std::string hash_a_, hash_b_;
};

TEST_F(Fixture, AggregatesSeedsWithSampleStdAndCountsOtherStatuses) {
  const auto spec = report::load_spec(spec_path_);
  const auto r = make(spec);
  const auto* a = r.find("r", "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->hash, hash_a_);
  EXPECT_EQ(a->stats.n, 3);
  const double mean = (10.0 + 12.0 + 17.0) / 3;
  const double sd = std::sqrt((std::pow(10 - mean, 2) + std::pow(12 - mean, 2) +
                               std::pow(17 - mean, 2)) / 2);
  EXPECT_DOUBLE_EQ(a->stats.mean, mean);
  EXPECT_NEAR(a->stats.std, sd, 1e-12);
  EXPECT_EQ(a->other.at("diverged"), 1);
  EXPECT_EQ(r.find("r", "b")->stats.n, 1);
  EXPECT_EQ(r.find("r", "c")->stats.n, 0);
  // Lower is better within the row: b (11.5) best, a (13) second.
  EXPECT_EQ(r.find("r", "b")->ours_mark, report::Mark::Best);
  EXPECT_EQ(a->ours_mark, report::Mark::Second);

  const auto md = report::render_markdown(r);
  EXPECT_NE(md.find(fmt::format("*{:.2f}* ± {:.2f} (n=3) (+1 diverged)", mean, sd)),
            std::string::npos) << md;
  EXPECT_NE(md.find("**11.50** ± – (n=1)"), std::string::npos) << md;
  EXPECT_NE(md.find("paper **12.50**"), std::string::npos) << md;
  EXPECT_NE(md.find(fmt::format("(Δ {:+.2f})", mean - 12.5)), std::string::npos) << md;
  EXPECT_NE(md.find("| —<br>paper – |"), std::string::npos) << md;  // cell c: missing
  EXPECT_EQ(md.find("50.00"), std::string::npos) << md;  // the unmatched run is not a cell

  const auto csv = report::render_csv(r);
  EXPECT_NE(csv.find(fmt::format("r,a,{},,{},ok,3,{:.4f},{:.4f},12.50,best,second,{:.4f},1,0,0",
                                 fs::proximate(config_).string(), hash_a_, mean, sd, mean - 12.5)),
            std::string::npos) << csv;
  EXPECT_NE(csv.find(",missing,0,,,,,,,0,0,0"), std::string::npos) << csv;

  const auto j = json::parse(report::render_json(r));
  EXPECT_EQ(j["cells"][0]["n"], 3);
  EXPECT_TRUE(j["cells"][2]["mean"].is_null());
}

// Marks rank the means within a row: best, then the next distinct mean as second best; a
// third cell gets nothing. A cell alone in its group (best_within: column here) is not the
// best of anything.
TEST_F(Fixture, MarksGoToTheBestAndTheNextMeanAndNeedTwoResults) {
  const auto hash_c = config::load_experiment(config_, {"norm.noise.sigma=0.3"}, schema()).hash();
  write_run(hash_c, 0, "completed", 14.0);
  auto spec = report::load_spec(spec_path_);
  const auto r = make(spec);  // means: a 13, b 11.5, c 14
  EXPECT_EQ(r.find("r", "b")->ours_mark, report::Mark::Best);
  EXPECT_EQ(r.find("r", "a")->ours_mark, report::Mark::Second);
  EXPECT_EQ(r.find("r", "c")->ours_mark, report::Mark::None);
  spec.best_within = "column";
  for (const auto& c : make(spec).cells)
    EXPECT_EQ(c.ours_mark, report::Mark::None) << c.cell->column;
}

// The CSV reads back field for field with Python's csv module (RFC 4180: a field with a comma,
// quote or newline is quoted, its quotes doubled).
TEST_F(Fixture, CsvReadsBackWithPythonsCsvModule) {
  auto spec = report::load_spec(spec_path_);
  const std::string status = "unsupported (\"needs FastAA\", a, b)\nsee notes";
  spec.cells[2].status = status;
  spec.cells[1].sets = {"train.note=\"x,y\""};  // no such key: a config error, its set printed
  const auto csv = dir_.write("table.csv", report::render_csv(make(spec)));
  const auto r = sh("python3 -c 'import csv, json, sys; "
                    "print(json.dumps(list(csv.reader(open(sys.argv[1], newline=\"\")))))' " +
                    csv.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto rows = json::parse(r.out);
  ASSERT_EQ(rows.size(), 4u) << r.out;  // header and three cells
  for (const auto& row : rows) EXPECT_EQ(row.size(), 16u) << row.dump();
  EXPECT_EQ(rows[2][3], "train.note=\"x,y\"");
  EXPECT_EQ(rows[3][5], status);
}

// A table of our own (no paper numbers anywhere) shows ours alone: no "paper –" under every
// cell and no Δ; the same table with paper numbers shows them (the test above).
TEST_F(Fixture, ATableWithoutPaperNumbersShowsOursAlone) {
  auto spec = report::load_spec(spec_path_);
  for (auto& cell : spec.cells) {
    cell.paper.reset();
    cell.paper_mark = report::Mark::None;
  }
  const auto md = report::render_markdown(make(spec));
  EXPECT_EQ(md.find("paper –"), std::string::npos) << md;
  EXPECT_EQ(md.find("<br>"), std::string::npos) << md;
  EXPECT_EQ(md.find("Δ"), std::string::npos) << md;
  EXPECT_NE(md.find("the paper gives no numbers for this table"), std::string::npos) << md;
  EXPECT_NE(md.find("| **11.50** ± – (n=1) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| — |"), std::string::npos) << md;  // cell c: missing
}

TEST_F(Fixture, LatexIsBalancedAndEscaped) {
  const auto spec = report::load_spec(spec_path_);
  const auto tex = report::render_latex(make(spec));
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t p = tex.find(s); p != std::string::npos; p = tex.find(s, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("\\begin{"), count("\\end{"));
  EXPECT_EQ(count("\\begin{"), 2u);
  EXPECT_NE(tex.find("err\\_rate \\% tiny"), std::string::npos) << tex;
  EXPECT_NE(tex.find("tiny\\_row"), std::string::npos) << tex;
  EXPECT_NE(tex.find("\\textbf{11.50} (1)"), std::string::npos) << tex;
}

// Tables whose cells are different quantities of the same runs (Akbar Exp. 2: iterations,
// λ_max, condition number): a cell's `metric` overrides the table's.
TEST_F(Fixture, PerCellMetricOverridesTheTables) {
  const auto path = dir_.write("mixed.yaml", R"(title: mixed
source: {paper: "002_test.txt", table: "Exp. 2"}
metric: final.test_err
rows: [r]
columns: [err, epoch, missing]
cells:
  - {row: r, column: err, config: tiny.yaml}
  - {row: r, column: epoch, config: tiny.yaml, metric: final.epoch, paper: 2}
  - {row: r, column: missing, config: tiny.yaml, metric: final.nothing}
)");
  const auto spec = report::load_spec(path);
  EXPECT_EQ(spec.metric_of(spec.cells[0]), "final.test_err");
  EXPECT_EQ(spec.metric_of(spec.cells[1]), "final.epoch");
  const auto r = make(spec);
  EXPECT_DOUBLE_EQ(r.find("r", "err")->stats.mean, (10.0 + 12.0 + 17.0) / 3);
  EXPECT_EQ(r.find("r", "epoch")->stats.n, 3);
  EXPECT_DOUBLE_EQ(r.find("r", "epoch")->stats.mean, 2.0);
  EXPECT_EQ(r.find("r", "missing")->stats.n, 0);
  EXPECT_EQ(r.find("r", "missing")->other.at("completed without final.nothing"), 3);
  EXPECT_NE(report::render_markdown(r).find("(r, epoch) `final.epoch`"), std::string::npos);
  EXPECT_EQ(json::parse(report::render_json(r))["cells"][1]["metric"], "final.epoch");
  // A misspelled key is still caught.
  const auto bad = dir_.write("bad.yaml", R"(title: bad
source: {paper: "002_test.txt", table: "Exp. 2"}
rows: [r]
columns: [c]
cells:
  - {row: r, column: c, config: tiny.yaml, metrc: final.epoch}
)");
  EXPECT_THROW(report::load_spec(bad), ConfigError);
}

TEST_F(Fixture, UnmatchedRunsAndGlobalSetsChangeHashes) {
  const auto spec = report::load_spec(spec_path_);
  report::ReportOptions o;
  o.unmatched = true;
  const auto r = make(spec, o);
  ASSERT_EQ(r.unmatched.size(), 1u);
  EXPECT_EQ(r.unmatched[0].hash, "00000000deadbeef");
  o.sets = {"train.epochs=2"};
  const auto reduced = make(spec, o);
  EXPECT_NE(reduced.find("r", "a")->hash, hash_a_);
  EXPECT_EQ(reduced.find("r", "a")->stats.n, 0);
  EXPECT_EQ(reduced.unmatched.size(), 6u);
  // The report's --set comes after a cell's own, so it wins where both set a key (as a
  // command line overrides a config): every cell is then the σ = 0.2 run.
  o.sets = {"norm.noise.sigma=0.2"};
  for (const auto& c : make(spec, o).cells) EXPECT_EQ(c.hash, hash_b_) << c.cell->column;
}

TEST_F(Fixture, PlanListsExactlyTheMissingCellSeedPairs) {
  const auto spec = report::load_spec(spec_path_);
  report::PlanOptions o;
  o.seeds = {0, 1, 2, 3};
  std::vector<std::string> comments;
  const auto items = report::plan_items(spec, schema(), report::index_results(root_), o, comments);
  std::set<std::pair<std::string, std::int64_t>> got;
  for (const auto& i : items) {
    got.insert({i.cell->column, i.seed});
    EXPECT_NE(i.command.find("--resume"), std::string::npos);
    EXPECT_NE(i.command.find(fmt::format("--seed {}", i.seed)), std::string::npos);
  }
  const std::set<std::pair<std::string, std::int64_t>> want{
      {"b", 1}, {"b", 2}, {"b", 3}, {"c", 0}, {"c", 1}, {"c", 2}, {"c", 3}};
  EXPECT_EQ(got, want);
  ASSERT_EQ(comments.size(), 1u);  // a seed 3 diverged: not re-planned
  EXPECT_NE(comments[0].find("diverged"), std::string::npos);

  o.slurm = true;
  const auto script = report::render_plan(spec, items, comments, o);
  EXPECT_NE(script.find("#SBATCH --array=0-6"), std::string::npos) << script;
  EXPECT_NE(script.find("srun --kill-on-bad-exit=1 bash -c \"exec ${cmds[$SLURM_ARRAY_TASK_ID]}\""),
            std::string::npos) << script;
  EXPECT_NE(script.find("#SBATCH --requeue"), std::string::npos);
  EXPECT_NE(script.find("scontrol requeue"), std::string::npos);
  o.slurm_options.requeue = false;
  o.slurm_options.signal_seconds = 0;
  const auto plain = report::render_plan(spec, items, comments, o);
  EXPECT_EQ(plain.find("requeue"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("--signal"), std::string::npos) << plain;
}

// The same (hash, seed) under a second run name (quickstart hashes like the fmnist cnn9 cwo
// cell) is one experiment: counted once, from the first directory in path order. Catches n and
// the mean being inflated by the copy.
TEST_F(Fixture, ARunUnderTwoNamesCountsOnce) {
  json m{{"name", "zzz"}, {"hash", hash_a_}, {"seed", 0}, {"status", "completed"},
         {"final", {{"epoch", 2}, {"test_err", 99.0}}}};
  dir_.write("results/zzz/" + hash_a_ + "/seed0/metrics.json", m.dump());
  const auto spec = report::load_spec(spec_path_);
  const auto r = make(spec);
  const auto* a = r.find("r", "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->stats.n, 3);
  EXPECT_DOUBLE_EQ(a->stats.mean, 13.0);
  EXPECT_EQ(a->other.count("duplicate of a seed") ? a->other.at("duplicate of a seed") : 0, 1);
}

// The paper's claims judged from the runs: cell a has seeds 10, 12, 17 (mean 13), b one seed
// (11.5), c none.
TEST_F(Fixture, ClaimsAreJudgedFromTheRunsWithTheirNumbers) {
  const auto spec_path = dir_.write("claims.yaml", std::string(kSpec) + R"(claims:
  - {id: near, text: "a is on par with b", section: "§1", kind: within, a: a, b: b, value: 2}
  - {id: tight, text: "a is very close to b", kind: within, a: a, b: b, value: 1}
  - {id: at_most, text: "a no worse than b", kind: at_most, a: a, b: b, value: 1}
  - {id: lower, text: "b beats a", kind: below, a: b, b: a}
  - {id: higher, text: "b is above a", kind: above, a: b, b: a}
  - {id: empty, text: "a beats c", kind: below, a: a, b: c}
)");
  const auto spec = report::load_spec(spec_path);
  const auto verdicts = report::judge_claims(make(spec));
  ASSERT_EQ(verdicts.size(), 6u);
  std::map<std::string, std::string> got;
  for (const auto& v : verdicts) got[v.claim->id] = v.verdict;
  EXPECT_EQ(got["near"], "holds");
  EXPECT_EQ(got["tight"], "does not hold");
  EXPECT_EQ(got["at_most"], "does not hold");
  EXPECT_EQ(got["lower"], "holds");
  EXPECT_EQ(got["higher"], "does not hold");
  EXPECT_EQ(got["empty"], "not enough runs");
  const std::string text = report::render_claims(verdicts);
  EXPECT_NE(text.find("a 13.00 ± 3.61 (n = 3, +1 diverged) vs b 11.50 (n = 1): |difference| 1.50 <= 2"),
            std::string::npos) << text;
  EXPECT_NE(text.find("seed noise not estimated"), std::string::npos) << text;
  EXPECT_NE(text.find("\"a is on par with b\" — **holds**"), std::string::npos) << text;

  // Bad claims are config errors naming the key.
  const auto bad = dir_.write("bad_claims.yaml", std::string(kSpec) + R"(claims:
  - {id: x, text: t, kind: within, a: a, b: zz}
)");
  try {
    report::load_spec(bad);
    ADD_FAILURE() << "a claim on an unknown column was accepted";
  } catch (const ConfigError& e) {
    std::string m;
    for (const auto& issue : e.issues()) m += issue.str() + "\n";
    EXPECT_NE(m.find("claims[0].b"), std::string::npos) << m;
    EXPECT_NE(m.find("needs its tolerance"), std::string::npos) << m;
  }
}

// One row, columns a and b, and the claim "a below b": the cells' seeds are set by each test.
struct TwoCellReport {
  report::TableSpec spec;
  report::Report r;
  TwoCellReport() {
    spec.rows = {{"r", "row"}};
    spec.columns = {{"a", "A"}, {"b", "B"}};
    spec.cells = {report::Cell{}, report::Cell{}};
    spec.cells[0].row = spec.cells[1].row = "r";
    spec.cells[0].column = "a";
    spec.cells[1].column = "b";
    report::Claim c;
    c.id = "c";
    c.kind = "below";
    c.a.column = "a";
    c.b.column = "b";
    spec.claims = {c};
    r.spec = &spec;
    r.cells.resize(2);
    r.cells[0].cell = &spec.cells[0];
    r.cells[1].cell = &spec.cells[1];
  }
  TwoCellReport(const TwoCellReport&) = delete;  // r points into spec
};

// With seeds on both sides, Welch's t decides whether a difference exceeds the noise, and
// "a below b" holds only if it does: means 0.5 apart with seeds 2.5 apart establish nothing
// (the verdict used to be "holds" on the means alone, e.g. a generalization gap 0.1 point
// smaller at t = -0.1).
TEST(Claims, WelchTSaysWhetherTheDifferenceExceedsTheNoise) {
  TwoCellReport t2;
  auto& r = t2.r;
  r.cells[0].stats = report::aggregate({10.0, 10.2, 9.8});
  r.cells[1].stats = report::aggregate({12.0, 12.2, 11.8});
  auto text = report::render_claims(report::judge_claims(r));
  EXPECT_NE(text.find("exceeds the seed noise"), std::string::npos) << text;
  EXPECT_EQ(text.find("no seed-to-seed spread"), std::string::npos) << text;  // there is one
  EXPECT_NE(text.find("**holds**"), std::string::npos) << text;
  r.cells[1].stats = report::aggregate({8.0, 10.5, 13.0});  // mean 10.5, wide spread
  text = report::render_claims(report::judge_claims(r));
  EXPECT_NE(text.find("is within the seed noise"), std::string::npos) << text;
  EXPECT_NE(text.find("**within the seed noise**"), std::string::npos) << text;
  // Means that point the other way within the noise: the claim is not supported either way,
  // and "does not hold" says that.
  r.cells[1].stats = report::aggregate({7.0, 9.5, 12.0});  // mean 9.5
  text = report::render_claims(report::judge_claims(r));
  EXPECT_NE(text.find("**does not hold**"), std::string::npos) << text;
}

// Diverged runs have no value, so the statistics rest on the survivors; the evidence counts the
// diverged ones beside them (a cell with one surviving seed of four must not read as clean).
TEST(Claims, EvidenceCountsTheDivergedRuns) {
  TwoCellReport t2;
  auto& r = t2.r;
  r.cells[0].stats = report::aggregate({10.0, 10.4});
  r.cells[1].stats = report::aggregate({12.0});
  r.cells[1].other["diverged"] = 3;
  auto text = report::render_claims(report::judge_claims(r));
  EXPECT_NE(text.find("a 10.20 ± 0.28 (n = 2) vs b 12.00 (n = 1, +3 diverged)"),
            std::string::npos) << text;
  r.cells[1].stats = report::aggregate({});
  r.cells[1].other["diverged"] = 2;
  text = report::render_claims(report::judge_claims(r));
  EXPECT_NE(text.find("vs b — (2 diverged): no completed run"), std::string::npos) << text;
  r.cells[1].other.clear();
  r.cells[1].stats = report::aggregate({12.0, 12.0});
  text = report::render_claims(report::judge_claims(r));
  EXPECT_NE(text.find("b 12.00 (n = 2, all equal)"), std::string::npos) << text;
  EXPECT_EQ(text.find("diverged"), std::string::npos) << text;
}

// Seeds that change nothing (a deterministic task gives n runs equal up to summation order)
// carry no noise estimate: t must not be formed from a 1e-16 spread, which would call any
// difference, however small, significant.
TEST(Claims, SeedsThatAgreeToRoundingGiveNoT) {
  TwoCellReport t2;
  auto& spec = t2.spec;
  auto& r = t2.r;
  const double x = 396.69;
  r.cells[0].stats = report::aggregate({x, x * (1 + 2e-16), x});
  r.cells[1].stats = report::aggregate({x + 1e-6, x + 1e-6, x + 1e-6 * (1 + 1e-15)});
  ASSERT_GT(r.cells[0].stats.std, 0.0);  // the rounding-level spread the report must ignore
  auto text = report::render_claims(report::judge_claims(r));
  EXPECT_EQ(text.find("exceeds the seed noise"), std::string::npos) << text;
  EXPECT_EQ(text.find("fewer than 2 seeds"), std::string::npos) << text;
  EXPECT_NE(text.find("no seed-to-seed spread on either side"), std::string::npos) << text;
  EXPECT_NE(text.find("(n = 3, all equal)"), std::string::npos) << text;
  EXPECT_NE(text.find("**holds**"), std::string::npos) << text;  // the verdict is the means'

  // One side varies: Welch's t comes from that side's spread alone.
  r.cells[1].stats = report::aggregate({397.0, 398.0, 399.0});
  text = report::render_claims(report::judge_claims(r));
  EXPECT_NE(text.find("Welch t -2.3"), std::string::npos) << text;  // -1.31 / (1 / sqrt 3)

  // A threshold claim over equal runs.
  report::Claim t;
  t.id = "t";
  t.kind = "below";
  t.a.column = "a";
  t.value = 1;
  spec.claims = {t};
  text = report::render_claims(report::judge_claims(r));
  EXPECT_NE(text.find("no seed-to-seed spread: nothing to weigh"), std::string::npos) << text;
  EXPECT_NE(text.find("**does not hold**"), std::string::npos) << text;
}

// A hand-made report over rows {bn, plain, ln} x columns {lmax, iters, acc}, each cell's
// seeds given, for the claim kinds that compare rows, ratios and thresholds.
struct HandReport {
  report::TableSpec spec;
  report::Report r;
  HandReport(const std::map<std::pair<std::string, std::string>, std::vector<double>>& seeds) {
    spec.rows = {{"bn", "with BN"}, {"plain", "without BN"}, {"ln", "LN"}};
    spec.columns = {{"lmax", "λ_max"}, {"iters", "iterations"}, {"acc", "accuracy"}};
    for (const auto& [rc, v] : seeds) {
      report::Cell c;
      c.row = rc.first;
      c.column = rc.second;
      spec.cells.push_back(c);
    }
    r.spec = &spec;
    for (size_t i = 0; i < spec.cells.size(); ++i) {
      report::CellResult cr;
      cr.cell = &spec.cells[i];
      cr.stats = report::aggregate(seeds.at({spec.cells[i].row, spec.cells[i].column}));
      r.cells.push_back(cr);
    }
  }
  // Judges one claim; returns its verdict and rendered text.
  std::pair<std::string, std::string> judge(const report::Claim& c) {
    spec.claims = {c};
    const auto v = report::judge_claims(r);
    return {v.at(0).verdict, report::render_claims(v)};
  }
};

report::Claim claim(const std::string& kind, report::ClaimSide a, report::ClaimSide b,
                    double value) {
  report::Claim c;
  c.id = "c";
  c.kind = kind;
  c.a = std::move(a);
  c.b = std::move(b);
  c.value = value;
  return c;
}

// "λ_max 5x smaller with BN" (Akbar Exp. 2): plain / bn >= 5 between two rows' cells. Catches
// an inverted ratio (b / a), a strict > where the claim says "at least", and a ratio over a
// non-positive denominator being taken at face value.
TEST(Claims, RatioBetweenTwoRowsCells) {
  HandReport h({{{"bn", "lmax"}, {2.0}}, {{"plain", "lmax"}, {10.0}}});
  auto [verdict, text] = h.judge(claim("ratio_at_least", {"plain", "lmax"}, {"bn", "lmax"}, 5));
  EXPECT_EQ(verdict, "holds") << text;
  EXPECT_NE(text.find("λ_max: plain/lmax 10.00 (n = 1) vs bn/lmax 2.00 (n = 1): ratio 5.00 >= 5"),
            std::string::npos) << text;
  EXPECT_NE(text.find("plain/lmax / bn/lmax at least 5"), std::string::npos) << text;
  EXPECT_EQ(h.judge(claim("ratio_at_least", {"plain", "lmax"}, {"bn", "lmax"}, 5.5)).first,
            "does not hold");
  EXPECT_EQ(h.judge(claim("ratio_at_least", {"bn", "lmax"}, {"plain", "lmax"}, 5)).first,
            "does not hold");
  HandReport neg({{{"bn", "lmax"}, {-2.0}}, {{"plain", "lmax"}, {10.0}}});
  std::tie(verdict, text) = neg.judge(claim("ratio_at_least", {"plain", "lmax"}, {"bn", "lmax"}, 5));
  EXPECT_EQ(verdict, "does not hold") << text;
  EXPECT_NE(text.find("ratio undefined"), std::string::npos) << text;
  // With seeds on both sides: Welch's t of a - k·b, far from the bound (20 - 5·2 = 10) and
  // near it (10.5 - 5·2 = 0.5, se 0.29).
  HandReport far({{{"bn", "lmax"}, {1.9, 2.0, 2.1}}, {{"plain", "lmax"}, {20.0, 20.2, 19.8}}});
  std::tie(verdict, text) = far.judge(claim("ratio_at_least", {"plain", "lmax"}, {"bn", "lmax"}, 5));
  EXPECT_EQ(verdict, "holds") << text;
  EXPECT_NE(text.find("Welch t of a − 5·b +32.2: the difference exceeds"), std::string::npos)
      << text;
  HandReport near({{{"bn", "lmax"}, {1.9, 2.0, 2.1}}, {{"plain", "lmax"}, {10.4, 10.5, 10.6}}});
  std::tie(verdict, text) = near.judge(claim("ratio_at_least", {"plain", "lmax"}, {"bn", "lmax"}, 5));
  EXPECT_EQ(verdict, "within the seed noise") << text;  // 5.25 >= 5, but not beyond the noise
  EXPECT_NE(text.find("ratio 5.25 >= 5; Welch t of a − 5·b +1.7: the difference is within"),
            std::string::npos) << text;
}

// One cell against a threshold ("BN converges in < 100 iterations", "∏‖W_i‖ reaches 1e50"):
// b left out compares a with `value`. Catches a threshold compared as a difference from 0,
// and strict/non-strict bounds swapped.
TEST(Claims, OneCellAgainstAThreshold) {
  HandReport h({{{"bn", "iters"}, {78.0}}, {{"plain", "iters"}, {555.0}}});
  auto [verdict, text] = h.judge(claim("below", {"bn", "iters"}, {}, 100));
  EXPECT_EQ(verdict, "holds") << text;
  EXPECT_NE(text.find("iterations: bn/iters 78.00 (n = 1): 78.00 < 100"), std::string::npos)
      << text;
  EXPECT_NE(text.find("bn/iters below 100"), std::string::npos) << text;
  EXPECT_EQ(h.judge(claim("below", {"plain", "iters"}, {}, 100)).first, "does not hold");
  EXPECT_EQ(h.judge(claim("below", {"bn", "iters"}, {}, 78)).first, "does not hold");  // strict
  EXPECT_EQ(h.judge(claim("at_most", {"bn", "iters"}, {}, 78)).first, "holds");
  EXPECT_EQ(h.judge(claim("at_least", {"plain", "iters"}, {}, 555)).first, "holds");
  EXPECT_EQ(h.judge(claim("at_least", {"plain", "iters"}, {}, 556)).first, "does not hold");
  EXPECT_EQ(h.judge(claim("above", {"plain", "iters"}, {}, 555)).first, "does not hold");
  EXPECT_EQ(h.judge(claim("within", {"bn", "iters"}, {}, 80)).first, "holds");  // |78| <= 80
  EXPECT_EQ(h.judge(claim("within", {"bn", "iters"}, {}, 70)).first, "does not hold");
  // Several seeds: the one-sample t against the threshold.
  HandReport seeds({{{"bn", "iters"}, {70.0, 71.0, 72.0}}});
  std::tie(verdict, text) = seeds.judge(claim("below", {"bn", "iters"}, {}, 100));
  EXPECT_NE(text.find("t of the mean against 100 -50.2: the difference exceeds"),
            std::string::npos) << text;
  std::tie(verdict, text) = seeds.judge(claim("below", {"bn", "iters"}, {}, 71.5));
  EXPECT_EQ(verdict, "within the seed noise") << text;  // mean 71 < 71.5, std 1
  EXPECT_NE(text.find("is within the seed noise"), std::string::npos) << text;
  // A tolerance ("within k of 0") is about closeness: its verdict stays the mean's.
  EXPECT_EQ(seeds.judge(claim("within", {"bn", "iters"}, {}, 71.5)).first, "holds");
}

// A row against another row in every column ("BCN above LN"), or in the listed columns; a
// column judged row by row with a threshold, in the listed rows. Catches iterating the wrong
// axis, ignoring the lists, and a failing column being hidden by a passing one.
TEST(Claims, RowsAgainstRowsColumnByColumnAndListedRows) {
  HandReport h({{{"bn", "lmax"}, {3.0}}, {{"ln", "lmax"}, {2.0}}, {{"bn", "acc"}, {80.0}},
                {{"ln", "acc"}, {85.0}}, {{"plain", "acc"}, {10.0}}});
  report::ClaimSide bn{"bn", ""}, ln{"ln", ""};
  auto [verdict, text] = h.judge(claim("above", bn, ln, 0));
  EXPECT_EQ(verdict, "does not hold") << text;  // above in λ_max, not in accuracy
  EXPECT_NE(text.find("λ_max: bn 3.00 (n = 1) vs ln 2.00 (n = 1): difference +1.00 (above)"),
            std::string::npos) << text;
  EXPECT_NE(text.find("accuracy: bn 80.00 (n = 1) vs ln 85.00 (n = 1): difference -5.00 (not above)"),
            std::string::npos) << text;
  auto c = claim("above", bn, ln, 0);
  c.columns = {"lmax"};
  std::tie(verdict, text) = h.judge(c);
  EXPECT_EQ(verdict, "holds") << text;
  EXPECT_EQ(text.find("accuracy:"), std::string::npos) << text;
  // A column row by row against a threshold, in the listed rows only.
  auto t = claim("at_least", {"", "acc"}, {}, 50);
  t.rows = {"bn", "ln"};
  EXPECT_EQ(h.judge(t).first, "holds");
  t.rows = {};
  std::tie(verdict, text) = h.judge(t);
  EXPECT_EQ(verdict, "does not hold") << text;
  EXPECT_NE(text.find("without BN: acc 10.00 (n = 1): 10.00 < 50"), std::string::npos) << text;
  // Differences against a non-zero bound between rows.
  EXPECT_EQ(h.judge(claim("at_least", {"ln", ""}, {"bn", ""}, 4)).first, "does not hold");
  auto d = claim("at_least", {"ln", ""}, {"bn", ""}, 4);
  d.columns = {"acc"};
  EXPECT_EQ(h.judge(d).first, "holds");  // 85 - 80 >= 4
  d.kind = "below";
  d.value = -4;
  EXPECT_EQ(h.judge(d).first, "does not hold");  // 85 - 80 is not below -4
  EXPECT_EQ(h.judge(claim("below", {"bn", "acc"}, {"ln", "acc"}, -4)).first, "holds");
  // A pair that fails outweighs a pair without runs: the claim does not hold, whatever the
  // missing runs would show.
  HandReport gap({{{"bn", "lmax"}, {}}, {{"ln", "lmax"}, {2.0}}, {{"bn", "acc"}, {80.0}},
                  {{"ln", "acc"}, {85.0}}});
  std::tie(verdict, text) = gap.judge(claim("above", bn, ln, 0));
  EXPECT_EQ(verdict, "does not hold") << text;
  EXPECT_NE(text.find("no completed run"), std::string::npos) << text;
  c = claim("above", bn, ln, 0);
  c.columns = {"lmax"};
  EXPECT_EQ(gap.judge(c).first, "not enough runs");
}

// The YAML forms: a column id, {row}, {row, column}, no b; and the mistakes they allow.
TEST_F(Fixture, ClaimSidesInYamlAndTheirErrors) {
  const auto spec_path = dir_.write("sides.yaml", std::string(kSpec) + R"(claims:
  - {id: cell, text: "a reaches 13", kind: at_least, a: {row: r, column: a}, value: 13}
  - {id: cell_hi, text: "a reaches 13.5", kind: at_least, a: {row: r, column: a}, value: 13.5}
  - {id: row, text: "row r: a above b", kind: above, a: {column: a}, b: {column: b}, rows: [r]}
  - {id: by_col, text: "r below 12 in a, b", kind: below, a: {row: r}, value: 12, columns: [a, b]}
)");
  const auto spec = report::load_spec(spec_path);
  ASSERT_EQ(spec.claims.size(), 4u);
  EXPECT_EQ(spec.claims[0].a.row, "r");
  EXPECT_TRUE(spec.claims[0].b.empty());
  const auto verdicts = report::judge_claims(make(spec));
  std::map<std::string, std::string> got;
  for (const auto& v : verdicts) got[v.claim->id] = v.verdict;
  EXPECT_EQ(got["cell"], "within the seed noise");  // mean 13.00 >= 13, exactly: t = 0
  EXPECT_EQ(got["cell_hi"], "does not hold");
  EXPECT_EQ(got["row"], "holds");         // 13 > 11.5
  EXPECT_EQ(got["by_col"], "does not hold");  // a: 13 is not below 12 (b: 11.5 is)
  const auto text = report::render_claims(verdicts);
  EXPECT_NE(text.find("σ 0.2: r 11.50 (n = 1): 11.50 < 12"), std::string::npos) << text;
  EXPECT_NE(text.find("t of the mean against 13 +0.0: the difference is within"),
            std::string::npos) << text;

  const auto bad = dir_.write("bad_sides.yaml", std::string(kSpec) + R"(claims:
  - {id: mixed, text: t, kind: above, a: {row: r}, b: {column: b}}
  - {id: rows_on_cell, text: t, kind: below, a: {row: r, column: a}, value: 1, rows: [r]}
  - {id: no_threshold, text: t, kind: below, a: {row: r, column: a}}
  - {id: ratio_alone, text: t, kind: ratio_at_least, a: a, value: 2}
  - {id: bad_row, text: t, kind: above, a: {row: zz}, b: {row: r}}
  - {id: empty_side, text: t, kind: above, a: {}, b: b}
)");
  try {
    report::load_spec(bad);
    ADD_FAILURE() << "bad claim sides were accepted";
  } catch (const ConfigError& e) {
    std::string m;
    for (const auto& issue : e.issues()) m += issue.str() + "\n";
    EXPECT_NE(m.find("must leave the same axis free"), std::string::npos) << m;
    EXPECT_NE(m.find("claims[1].rows"), std::string::npos) << m;
    EXPECT_NE(m.find("without b needs its threshold"), std::string::npos) << m;
    EXPECT_NE(m.find("claims[3].b: missing"), std::string::npos) << m;
    EXPECT_NE(m.find("no row with id 'zz'"), std::string::npos) << m;
    EXPECT_NE(m.find("a side names a row, a column or both"), std::string::npos) << m;
  }
}

// Two cells reading two metrics of one run (Ikami et al. 2021 Table 5: mean class and overall
// accuracy) plan that run once.
TEST_F(Fixture, CellsSharingARunPlanItOnce) {
  const auto spec_path = dir_.write("two_metrics.yaml", R"(title: two metrics
source: {paper: x, table: y}
metric: final.test_err
rows: [{id: r, label: r}]
columns: [{id: a, label: a}, {id: b, label: b}]
cells:
  - {row: r, column: a, config: tiny.yaml, set: ["norm.noise.sigma=0.3"]}
  - {row: r, column: b, config: tiny.yaml, set: ["norm.noise.sigma=0.3"], metric: final.test_top5_err}
)");
  report::PlanOptions o;
  o.seeds = {0, 1};
  std::vector<std::string> comments;
  const auto items = report::plan_items(report::load_spec(spec_path), schema(),
                                        report::index_results(root_), o, comments);
  EXPECT_EQ(items.size(), 2u);  // one run per seed, not per cell
}

// A metrics.json cut short (a full disk) or valid JSON that is not an object used to vanish
// from the table (n dropped without a word) or abort the whole report. Each is now a run of
// its cell with status "unreadable", named with its problem; the plan does not re-plan it
// (--resume would stop at it) but says why.
TEST_F(Fixture, UnreadableRunsAreCountedApartAndNamed) {
  const std::string b1 = "results/tiny/" + hash_b_ + "/seed1/metrics.json";
  const std::string b2 = "results/tiny/" + hash_b_ + "/seed2/metrics.json";
  dir_.write(b1, "{\"name\": \"tiny\", \"status\": \"comp");  // cut short
  dir_.write(b2, "[1, 2, 3]");
  const auto spec = report::load_spec(spec_path_);
  const auto index = report::index_results(root_);
  const auto r = report::build_report(spec, schema(), index, {});
  const auto* b = r.find("r", "b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->stats.n, 1);  // the readable seed 0 alone is averaged
  EXPECT_EQ(b->other.at("unreadable"), 2);
  EXPECT_NE(report::render_markdown(r).find("(+2 unreadable)"), std::string::npos);

  const auto named = report::unreadable_runs(index);
  ASSERT_EQ(named.size(), 2u);
  EXPECT_NE(named[0].find((dir_.path() / b1).string() + ": not valid JSON"), std::string::npos)
      << named[0];
  EXPECT_NE(named[1].find((dir_.path() / b2).string() + ": valid JSON but not an object (array)"),
            std::string::npos)
      << named[1];

  report::PlanOptions o;
  o.seeds = {0, 1, 2};
  std::vector<std::string> comments;
  for (const auto& item : report::plan_items(spec, schema(), index, o, comments))
    EXPECT_FALSE(item.cell->column == "b" && item.seed > 0) << item.command;
  int unreadable = 0;
  for (const auto& c : comments) unreadable += c.find("is unreadable") != std::string::npos;
  EXPECT_EQ(unreadable, 2);
}

// Device-hours of the missing runs from `normexp bench` rows: epochs x training-set size /
// images/s per run, matched by workload; runs without a row are listed, not guessed.
TEST_F(Fixture, PlanEstimatesDeviceHoursFromBenchRows) {
  const auto spec = report::load_spec(spec_path_);
  report::PlanOptions o;
  o.seeds = {0, 1, 2, 3};
  std::vector<std::string> comments;
  const auto items = report::plan_items(spec, schema(), report::index_results(root_), o, comments);
  ASSERT_EQ(items.size(), 7u);
  const auto exp = config::load_experiment(config_, {}, schema());
  const auto resolved = exp.resolved();
  // The noise level does not change the workload: every cell shares one row.
  const auto key = report::workload_key(resolved["model"], "cwo", 16, "standard", 0);
  for (const auto& i : items) EXPECT_EQ(i.workload, key);
  nlohmann::json row = {{"benchmark", "train_step"}, {"model", resolved["model"]},
                        {"norm", "cwo"},              {"batch_size", 16},
                        {"augment", "standard"},      {"cutout", 0},
                        {"images_per_s", 100.0},      {"device", "testdev"},
                        {"estimate", {{"train_size", 7200}}}};
  auto lines = report::estimate_plan(items, {row});
  ASSERT_FALSE(lines.empty());
  // 1 epoch x 7200 images / 100 images/s = 72 s = 0.02 h per run; 7 runs.
  EXPECT_EQ(lines[0], "# estimate: 7 of 7 planned runs, 0.1 device-hours of training steps on "
                      "testdev (evaluation not included)");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("7 runs x   0.02 h"), std::string::npos) << lines[1];

  row["batch_size"] = 32;  // another workload: nothing matches
  lines = report::estimate_plan(items, {row});
  EXPECT_NE(lines[0].find("0 of 7 planned runs"), std::string::npos) << lines[0];
  EXPECT_NE(lines.back().find("no bench row for: " + key), std::string::npos) << lines.back();
}

TEST_F(Fixture, PlotsWriteDataAndScript) {
  const auto spec = report::load_spec(spec_path_);
  const auto out = dir_.path() / "plots";
  const auto summary = report::write_plots(make(spec), out);
  ASSERT_TRUE(fs::exists(out / "tiny_table.dat")) << summary;
  ASSERT_TRUE(fs::exists(out / "tiny_table.gp")) << summary;
  // One block per cell with a completed run (c has none), titled by its row and column; per
  // epoch the mean over the completed seeds (a: test_err 11, 13, 18 at epoch 1, then 10, 12,
  // 17; its diverged seed left out), which the script plots column by column.
  EXPECT_EQ(read_file(out / "tiny_table.dat"),
            "# tiny_row, σ 0.1 (n=3)\n# epoch train_loss test_err\n1 2 14\n2 1 13\n\n\n"
            "# tiny_row, σ 0.2 (n=1)\n# epoch train_loss test_err\n1 2 12.5\n2 1 11.5\n\n\n");
  const auto gp = read_file(out / "tiny_table.gp");
  for (const auto& [series, column] : {std::pair{"train_loss", 2}, std::pair{"test_err", 3}}) {
    const auto at = gp.find(fmt::format("set output \"tiny_table_{}.svg\"", series));
    ASSERT_NE(at, std::string::npos) << gp;
    const auto from = gp.find("plot ", at);
    const auto plot = gp.substr(from, gp.find("set terminal png", at) - from);
    for (const auto& [index, title] :
         {std::pair{0, "tiny_row, σ 0.1"}, std::pair{1, "tiny_row, σ 0.2"}})
      EXPECT_NE(plot.find(fmt::format(
                    "\"tiny_table.dat\" index {} using 1:{} with lines title \"{}\"", index,
                    column, title)),
                std::string::npos)
          << series << ":\n" << plot;
  }
  if (sh("command -v gnuplot").code == 0) {
    EXPECT_TRUE(fs::exists(out / "tiny_table_test_err.png")) << summary;
    EXPECT_TRUE(fs::exists(out / "tiny_table_train_loss.svg")) << summary;
  }
}

// A legend is a double-quoted gnuplot string: a quote in a label must not end it.
TEST(Gnuplot, QuotesInALegendCannotEndItsString) {
  const auto gp = gnuplot::figure("out", "title", "x", "y", "d.dat", {{0, "say \"hi\"", "1:2"}});
  EXPECT_NE(gp.find("title \"say 'hi'\""), std::string::npos) << gp;
}

TEST_F(Fixture, PlotsWithoutGnuplotSayHowToRender) {
  const auto spec = report::load_spec(spec_path_);
  const std::string saved = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", (dir_.path() / "empty").c_str(), 1);  // no gnuplot reachable
  const auto summary = report::write_plots(make(spec), dir_.path() / "p");
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_NE(summary.find("gnuplot not found"), std::string::npos) << summary;
  EXPECT_NE(summary.find("gnuplot tiny_table.gp"), std::string::npos) << summary;
  EXPECT_TRUE(fs::exists(dir_.path() / "p/tiny_table.gp"));
  EXPECT_FALSE(fs::exists(dir_.path() / "p/tiny_table_test_err.png"));
}

// A planned command must reach normexp word for word: each word quoted by shell_quote comes
// back from the shell (sh, as Slurm and the plan's users run it) unchanged.
TEST(Plan, ShellQuotedWordsComeBackFromTheShellUnchanged) {
  for (const std::string word :
       {"plain", "configs/a b.yaml", "it's", "a'b'c", "''", "$HOME", "`id`", "back\\slash",
        "semi;colon", "star*", "new\nline", "train.lr=0.1", ""}) {
    const auto r = sh("printf '%s' " + report::shell_quote(word));
    EXPECT_EQ(r.code, 0) << report::shell_quote(word);
    EXPECT_EQ(r.out, word) << report::shell_quote(word);
  }
  EXPECT_EQ(report::shell_quote("train.lr=0.1"), "train.lr=0.1");  // plain words stay readable
}

// A metric that is not a finite number is no metric: it must not enter a mean. A file cannot
// hold one (JSON has no NaN; nlohmann refuses 1e999), but results built in memory, as the
// tasks build theirs, can.
TEST(Index, NonFiniteAndMissingMetricsAreAbsent) {
  json m = json::parse(R"({"final": {"loss": 0.5, "name": "x"}})");
  m["final"]["test_err"] = std::nan("");
  m["final"]["top5"] = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(report::metric_value(m, "final.test_err").has_value());
  EXPECT_FALSE(report::metric_value(m, "final.top5").has_value());
  EXPECT_EQ(report::metric_value(m, "final.loss"), 0.5);
  EXPECT_FALSE(report::metric_value(m, "final.name").has_value());
  EXPECT_FALSE(report::metric_value(m, "final.missing").has_value());
}

TEST(Spec, StrictValidationWithFileAndLine) {
  testing::TempDir dir;
  dir.write("c.yaml", kTiny);
  const auto p = dir.write("bad.yaml", R"(title: x
source: {paper: p, table: t}
colour: red
rows: [r]
columns: [a]
cells:
  - {row: r, column: z, config: c.yaml, paper: abc}
  - {row: r, column: a, config: missing.yaml}
)");
  try {
    report::load_spec(p);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string all;
    for (const auto& i : e.issues()) all += i.str() + "\n";
    EXPECT_NE(all.find("bad.yaml:3"), std::string::npos) << all;
    EXPECT_NE(all.find("colour"), std::string::npos) << all;
    EXPECT_NE(all.find("no column with id 'z'"), std::string::npos) << all;
    EXPECT_NE(all.find("paper"), std::string::npos) << all;
    EXPECT_NE(all.find("missing.yaml"), std::string::npos) << all;
  }
}

// A spec name is a file in --tables. A typo gets a suggestion and the list, and running
// outside the checkout (where configs/tables, the relative default, is not) says so instead of
// "cannot read configs/tables/x.yaml" (or, for --claims, a raw filesystem error).
TEST(Spec, ANameIsLookedUpInTheTablesFolder) {
  testing::TempDir dir;
  const fs::path tables = dir.path() / "tables";
  dir.write("tables/ikami_table3.yaml", "");
  dir.write("tables/akbar_exp1.yaml", "");
  dir.write("tables/notes.txt", "");
  EXPECT_EQ(report::spec_names(tables), (std::vector<std::string>{"akbar_exp1", "ikami_table3"}));
  EXPECT_EQ(report::resolve_spec_path("ikami_table3", tables), tables / "ikami_table3.yaml");
  EXPECT_EQ(report::resolve_spec_path("elsewhere/t.yaml", tables), fs::path("elsewhere/t.yaml"));
  const auto message = [](const auto& call) -> std::string {
    try {
      call();
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no ConfigError";
  };
  const std::string typo = message([&] { report::resolve_spec_path("ikami_tabel3", tables); });
  EXPECT_NE(typo.find("no spec 'ikami_tabel3' in " + tables.string() +
                      " (did you mean 'ikami_table3'?) (specs: akbar_exp1, ikami_table3)"),
            std::string::npos)
      << typo;
  const fs::path missing = dir.path() / "configs/tables";
  for (const std::string& what :
       {message([&] { report::resolve_spec_path("ikami_table3", missing); }),
        message([&] { report::spec_names(missing); })}) {
    EXPECT_NE(what.find("--tables: no spec folder '" + missing.string() + "'"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("pass --tables"), std::string::npos) << what;
  }
}

// Every spec loads and every cell with a config resolves through the real schema.
TEST(Specs, AllLoadAndResolve) {
  int specs = 0;
  for (const auto& e : fs::directory_iterator(kSource / "configs/tables")) {
    if (e.path().extension() != ".yaml") continue;
    ++specs;
    const auto spec = report::load_spec(e.path());
    for (const auto& cell : spec.cells)
      if (cell.config) {
        EXPECT_NO_THROW(config::load_experiment(*cell.config, cell.sets, schema()))
            << e.path() << " " << cell.where;
      }
  }
  // Several issues add specs (ikami_*, akbar_*, than_*, ...): every one must load; the exact
  // count is not this test's business.
  EXPECT_GE(specs, 6);
}

const report::Cell& cell_of(const report::TableSpec& s, const std::string& row,
                            const std::string& col) {
  const auto* c = s.find(row, col);
  if (!c) throw std::runtime_error("no cell " + row + "/" + col);
  return *c;
}

TEST(Specs, PaperNumbersMatchFile004) {
  const auto tables = kSource / "configs/tables";
  const auto t1 = report::load_spec(tables / "ikami_table1.yaml");
  EXPECT_EQ(t1.cells.size(), 60u);
  EXPECT_DOUBLE_EQ(*cell_of(t1, "c100_std_wrn28_10", "gn").paper, 22.63);
  EXPECT_EQ(cell_of(t1, "c10_std_cnn9", "bn").paper_mark, report::Mark::Best);
  EXPECT_EQ(cell_of(t1, "c10_std_cnn9", "ws_bn").paper_mark, report::Mark::Second);
  EXPECT_TRUE(cell_of(t1, "c100_faa_wrn28_10", "cwo").supported());  // FastAA (issue 8)
  EXPECT_DOUBLE_EQ(*cell_of(t1, "c100_faa_wrn28_10", "cwo").paper, 16.40);
  int supported = 0;
  for (const auto& c : t1.cells) supported += c.supported();
  EXPECT_EQ(supported, 60);

  const auto t2 = report::load_spec(tables / "ikami_table2.yaml");
  EXPECT_DOUBLE_EQ(*cell_of(t2, "c100", "cwo_b4").paper, 15.12);
  EXPECT_TRUE(cell_of(t2, "c100", "cwo_b4").supported());

  const auto t3 = report::load_spec(tables / "ikami_table3.yaml");
  EXPECT_DOUBLE_EQ(*cell_of(t3, "c10_center", "sigma10").paper, 4.66);

  const auto t4 = report::load_spec(tables / "ikami_table4.yaml");
  EXPECT_DOUBLE_EQ(*cell_of(t4, "c100", "linear08").paper, 18.25);
  EXPECT_EQ(cell_of(t4, "c100", "linear08").paper_mark, report::Mark::Best);
  EXPECT_EQ(cell_of(t4, "c100", "linear10").paper_mark, report::Mark::Second);
  EXPECT_FALSE(cell_of(t4, "c100", "const04").paper.has_value());

  // The Table 4 linear σ=1.0 cell is the headline run (configs/cifar100_wrn.yaml).
  const auto& head = cell_of(t4, "c100", "linear10");
  EXPECT_EQ(config::load_experiment(*head.config, head.sets, schema()).hash(),
            config::load_experiment(kSource / "configs/cifar100_wrn.yaml", {}, schema()).hash());
}

// scripts/readme_claims.sh: writes `normexp report --claims` between the markers and keeps
// the rest of the file; --check passes on what it wrote and fails (exit 1, naming the command
// that regenerates it) once the block is edited; a file without markers is exit 2. Catches
// the block landing outside the markers, text around them being lost, and a check that
// always passes.
TEST_F(Fixture, ReadmeClaimsScriptWritesAndChecksTheBlock) {
  const std::string script = "NORMEXP_BIN=" + std::string(NORMEXP_BINARY) + " bash " +
                             (kSource / "scripts/readme_claims.sh").string();
  const std::string results = " --results " + root_.string() + " ";
  const auto md = dir_.write("README.md", "# Title\n\nbefore\n<!-- claims:begin -->\nstale\n"
                                          "<!-- claims:end -->\nafter\n");
  auto r = sh(script + results + "--check " + md.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("regenerate it with: scripts/readme_claims.sh"), std::string::npos) << r.out;
  r = sh(script + results + md.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string text = read_file(md);
  EXPECT_EQ(text.rfind("# Title\n\nbefore\n<!-- claims:begin -->\n", 0), 0u) << text;
  EXPECT_NE(text.find("### Exp. 2: MLP"), std::string::npos) << text;  // headings one level down
  EXPECT_NE(text.find("- **lambda_max_5x_smaller** ("), std::string::npos) << text;
  EXPECT_NE(text.find(" claims: 0 hold, 0 within the seed noise, 0 do not hold, "), std::string::npos) << text;
  EXPECT_EQ(text.find("stale"), std::string::npos) << text;
  EXPECT_EQ(text.substr(text.size() - 26), "<!-- claims:end -->\nafter\n") << text;
  r = sh(script + results + "--check " + md.string());
  EXPECT_EQ(r.code, 0) << r.out;
  write_file_atomic(md, std::string(text).replace(text.find("**not enough runs**"), 19, "**holds**"));
  r = sh(script + results + "--check " + md.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("-"), std::string::npos) << r.out;
  const auto bare = dir_.write("bare.md", "no markers\n");
  EXPECT_EQ(sh(script + results + bare.string()).code, 2);
  // A --set scoped to a spec that is not in the report is an error, not a no-op.
  r = sh(std::string(NORMEXP_BINARY) + " report --claims --tables " +
         (kSource / "configs/tables").string() + results + "--set nosuchspec:train.epochs=1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("no spec named 'nosuchspec'"), std::string::npos) << r.out;
}

// Through the binary: report to a file, plan, and the sweep script (resume + failures).
TEST_F(Fixture, CliReportPlanAndSweep) {
  const std::string bin = NORMEXP_BINARY;
  auto r = sh(bin + " report " + spec_path_.string() + " --results " + root_.string() +
              " --format csv --output " + (dir_.path() / "t.csv").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(read_file(dir_.path() / "t.csv").find(",ok,3,"), std::string::npos);
  r = sh(bin + " plan " + spec_path_.string() + " --results " + root_.string() + " --seeds 0,1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("# tiny_table: 3 missing"), std::string::npos) << r.out;
  r = sh(bin + " report nonexistent_table --tables " + dir_.path().string());
  EXPECT_EQ(r.code, 2) << r.out;
  // The claims of every shipped spec that states some, judged against these results.
  r = sh(bin + " report --claims --tables " + (kSource / "configs/tables").string() +
         " --results " + root_.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("(ikami_table1)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(fmnist)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("**not enough runs**"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("(ikami_table4)"), std::string::npos) << r.out;  // states none
  EXPECT_EQ(sh(bin + " report").code, 2);
  const auto not_bench = dir_.write("other.json", "[{\"benchmark\": \"bcn_overhead\"}]");
  r = sh(bin + " plan " + spec_path_.string() + " --results " + root_.string() +
         " --estimate " + not_bench.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("not the output of `normexp bench CONFIG --out`"), std::string::npos)
      << r.out;

  const std::string sweep = "NORMEXP_BIN=" + bin + " bash " +
                            (kSource / "scripts/sweep_sigma.sh").string() + " " +
                            config_.string() + " --values 0.1,0.2 --seeds 5 -- --output " +
                            (dir_.path() / "sweep").string() + " --progress none";
  r = sh(sweep);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto m1 = dir_.path() / "sweep/tiny" / hash_a_ / "seed5/metrics.json";
  ASSERT_TRUE(fs::exists(m1)) << r.out;
  const auto t1 = fs::last_write_time(m1);
  r = sh(sweep);  // everything completed: nothing trains again
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(fs::last_write_time(m1), t1);

  r = sh("NORMEXP_BIN=" + bin + " bash " + (kSource / "scripts/sweep_sigma.sh").string() + " " +
         config_.string() + " --values -1,0.1 --seeds 5 -- --output " +
         (dir_.path() / "sweep").string() + " --progress none");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("norm.noise.sigma=-1 seed 5: exit 2"), std::string::npos) << r.out;
}

// Ctrl-C on a sweep stops the sweep. normexp exits 130 after writing its checkpoint, and bash
// goes on after a signal its child handled, so the scripts must stop on that code themselves;
// before, each Ctrl-C stopped one run and the next one started. A stand-in for normexp records
// each call and "is interrupted" in the second.
TEST(Scripts, AStoppedRunStopsTheSweepAndTheGrid) {
  testing::TempDir dir;
  const fs::path calls = dir.path() / "calls";
  const fs::path stub = dir.write(
      "normexp", "#!/bin/sh\necho \"$*\" >> " + calls.string() +
                     "\n[ $(wc -l < " + calls.string() + ") -eq 2 ] && exit 130\nexit 0\n");
  fs::permissions(stub, fs::perms::owner_all);
  const auto call_count = [&] {
    const std::string text = fs::exists(calls) ? read_file(calls) : "";
    return std::count(text.begin(), text.end(), '\n');
  };

  Shell r = sh("NORMEXP_BIN=" + stub.string() + " bash " +
               (kSource / "scripts/sweep_sigma.sh").string() +
               " c.yaml --values 0.1,0.2,0.3 --seeds 5");
  EXPECT_EQ(r.code, 130) << r.out;
  EXPECT_EQ(call_count(), 2) << read_file(calls);
  EXPECT_NE(r.out.find("sweep: stopped at norm.noise.sigma=0.2 seed 5 (exit 130)"),
            std::string::npos)
      << r.out;

  fs::remove(calls);
  r = sh("NORMEXP_BIN=" + stub.string() + " bash " + (kSource / "bench/fmnist_grid.sh").string() +
         " --archs cnn9 --norms cwo,bn,gn --seeds 0 --sigmas ''");
  EXPECT_EQ(r.code, 130) << r.out;
  EXPECT_EQ(call_count(), 2) << read_file(calls);
  EXPECT_NE(r.out.find("fmnist_grid.sh: stopped at: configs/fmnist/cnn9_bn.yaml --seed 0"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace normexp
