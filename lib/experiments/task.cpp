#include "experiments/task.h"

#include <spdlog/spdlog.h>

#include "train/progress.h"

namespace normexp::experiments {

TaskContext::TaskContext(const config::Experiment& e, c10::Device d, train::RunDirectory& r,
                         const train::ComponentFactory& c,
                         std::function<bool(int64_t)> stop_requested)
    : exp(e), device(d), run(r), dir(r.path()), components(c),
      stop_requested_(std::move(stop_requested)) {}

void TaskContext::write_partial(const nlohmann::json& results) const {
  run.write_metrics(run.metrics("running", {{"task", exp.task()}, {"results", results}}));
}

void TaskContext::write_file(const std::string& name, const std::string& text) const {
  run.write_file(name, text);
}

std::string TaskContext::progress_mode() const {
  switch (train::Progress::parse_mode(exp.section("train").get_string("progress"))) {
    case train::Progress::Mode::Bar: return "bar";
    case train::Progress::Mode::Plain: return "plain";
    case train::Progress::Mode::None: return "none";
  }
  return "plain";
}

std::function<TaskStatus(TaskContext&)> results_task(std::function<TaskResult(TaskContext&)> body) {
  return [body = std::move(body)](TaskContext& ctx) {
    if (ctx.run.reopened())
      spdlog::info("{}: task '{}' did not complete ({}); starting it again from the beginning",
                   ctx.dir.string(), ctx.exp.task(),
                   ctx.run.previous().is_object() ? ctx.run.previous().value("status", "unknown")
                                                  : "no metrics.json");
    ctx.run.claim();
    ctx.write_partial(nlohmann::json::object());
    const TaskResult r = body(ctx);
    ctx.run.write_metrics(ctx.run.metrics(
        train::status_name(r.status),
        {{"task", ctx.exp.task()}, {"results", r.results}}));
    return r.status;
  };
}

}  // namespace normexp::experiments
