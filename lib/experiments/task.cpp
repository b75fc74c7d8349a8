#include "experiments/task.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "core/error.h"
#include "train/progress.h"
#include "train/tensorboard_log.h"

namespace normexp::experiments {

TaskContext::TaskContext(const config::Experiment& e, c10::Device d, train::RunDirectory& r,
                         const train::ComponentFactory& c,
                         std::function<bool(int64_t)> stop_requested)
    : exp(e), device(d), run(r), dir(r.path()), components(c),
      stop_requested_(std::move(stop_requested)),
      start_unix_(unix_now()) {}

void TaskContext::write_partial(const nlohmann::json& results) const {
  run.write_metrics(
      run.metrics("running", {{"task", exp.task()}, {"results", results}}, prior_wall_s_));
}

void TaskContext::write_file(const std::string& name, const std::string& text) const {
  run.write_file(name, text);
}

void TaskContext::write_history(const nlohmann::json& rows, const std::string& status) const {
  history_ = rows;
  std::string text;
  for (const auto& r : rows) text += r.dump() + "\n";
  run.write_file("history.jsonl", text);
  if (exp.section("output").get_bool("tensorboard") && run.writes())
    train::write_tensorboard_log(dir, exp, start_unix_,
                                 std::vector<nlohmann::json>(rows.begin(), rows.end()), status);
}

std::string TaskContext::progress_mode() const {
  switch (train::Progress::parse_mode(exp.section("train").get_string("progress"))) {
    case train::Progress::Mode::Bar: return "bar";
    case train::Progress::Mode::Plain: return "plain";
    case train::Progress::Mode::None: return "none";
  }
  return "plain";
}

const std::vector<std::string>& step_extras() {
  static const std::vector<std::string> extras{"data.mixup", "data.cutmix", "data.repeated_aug",
                                               "train.label_smoothing", "train.clip_grad_norm"};
  return extras;
}

void check_step_extras(const config::Experiment& exp, const TaskDef& def) {
  std::vector<ConfigIssue> issues;
  for (const auto& extra : step_extras()) {
    if (std::find(def.honours.begin(), def.honours.end(), extra) != def.honours.end()) continue;
    const auto dot = extra.find('.');
    const std::string section = extra.substr(0, dot), key = extra.substr(dot + 1);
    const auto it = exp.sections.find(section);
    if (it == exp.sections.end()) continue;  // a section the task does not read
    const config::Params& p = it->second;
    if (p.is_default(key)) continue;
    issues.push_back(ConfigIssue{p.where(key), extra,
                                 "task " + exp.task() + " does not use it (the classification "
                                 "training step does); remove it"});
  }
  if (!issues.empty()) throw ConfigError(std::move(issues));
}

std::function<TaskStatus(TaskContext&)> results_task(std::function<TaskResult(TaskContext&)> body,
                                                     Resume resume) {
  return [body = std::move(body), resume](TaskContext& ctx) {
    if (ctx.run.reopened()) {
      const bool continues = resume == Resume::FromCheckpoint &&
                             std::filesystem::exists(ctx.dir / "checkpoint.pt");
      spdlog::info("{}: task '{}' did not complete ({}); {}", ctx.dir.string(), ctx.exp.task(),
                   ctx.run.previous().is_object() ? ctx.run.previous().value("status", "unknown")
                                                  : "no metrics.json",
                   continues ? "continuing from its checkpoint"
                             : "starting it again from the beginning");
    }
    ctx.run.claim();
    ctx.write_partial(nlohmann::json::object());
    const TaskResult r = body(ctx);
    ctx.run.write_metrics(ctx.run.metrics(
        train::status_name(r.status), {{"task", ctx.exp.task()}, {"results", r.results}},
        ctx.prior_wall_s_));
    // A task that kept a history: its TensorBoard session ends with the task's status.
    if (ctx.history_.is_array() && !ctx.history_.empty())
      ctx.write_history(ctx.history_, train::status_name(r.status));
    return r.status;
  };
}

}  // namespace normexp::experiments
