// Model::save_weights / load_weights in Keras's HDF5 layouts (see model.h).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <stdexcept>

#include "api/model.h"
#include "layers/keras_op.h"
#include "api/model_layer.h"
#include "layers/bidirectional.h"
#include "layers/time_distributed.h"
#include "io/atomic_file.h"
#include "io/hdf5.h"
#include "io/zip.h"

namespace strata {

namespace {

// The Keras release whose file layouts these writers follow, stored as keras_version.
constexpr const char* kKerasLayoutVersion = "3.15.1";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_keras3_weights_file(const std::string& path) { return ends_with(path, ".weights.h5"); }
bool is_legacy_h5_file(const std::string& path) { return ends_with(path, ".h5") || ends_with(path, ".hdf5"); }
bool is_keras_archive(const std::string& path) { return ends_with(path, ".keras"); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot read the file", path));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A scratch file next to `near` that is removed when this goes out of scope.
struct ScratchFile {
  std::string path;
  explicit ScratchFile(const std::string& near, const char* suffix) : path(io::temporary_path_near(near, suffix)) {}
  ~ScratchFile() { std::remove(path.c_str()); }
};

std::string date_saved() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d@%H:%M:%S", &tm);
  return buffer;
}

// keras.src.utils.naming.to_snake_case.
std::string to_snake_case(const std::string& name) {
  static const std::regex non_word("\\W+"), upper_word("(.)([A-Z][a-z]+)"), lower_upper("([a-z])([A-Z])");
  std::string s = std::regex_replace(name, non_word, "");
  s = std::regex_replace(s, upper_word, "$1_$2");
  s = std::regex_replace(s, lower_upper, "$1_$2");
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string shape_string(const Shape& s) { return s.to_string(); }

// Checks a value read from `where` against `variable` and assigns it; returns false (after saying why in
// `mismatch`) when shapes differ.
bool assign_checked(const VariablePtr& variable, const io::h5::FloatArray& value, const std::string& where, std::string& mismatch) {
  if (value.shape != variable->shape()) {
    mismatch = fmt::format("{}: weight '{}' has shape {} in the model but {} in the file", where, variable->name(),
                           shape_string(variable->shape()), shape_string(value.shape));
    return false;
  }
  variable->assign(value.values);
  return true;
}

std::string optimizer_name(const Optimizer& o) {
  const auto config = o.get_config();
  return config.contains("name") && config.at("name").is_string() ? config.at("name").get<std::string>() : to_snake_case(o.class_name());
}

// The datasets `names` of `group`, in order, as optimizer state; `named` keeps the names (a legacy .h5
// identifies its values by name, a .keras file by position).
std::vector<Optimizer::StateValue> read_state_values(const io::h5::Group& group, const std::vector<std::string>& names, bool named) {
  std::vector<Optimizer::StateValue> state;
  for (const auto& name : names) {
    io::h5::FloatArray value = group.read_floats(name);
    state.push_back({named ? name : std::string(), std::move(value.shape), std::move(value.values)});
  }
  return state;
}

// A mixed-precision model saved to .h5 lists its LossScaleOptimizer's variables ("loss_scale_optimizer/
// iteration" ... "loss_scale_optimizer/dynamic_scale") before the configured optimizer's. Float32 training
// has no use for loss scaling, so they are passed over, found by the dynamic scale's name.
std::vector<std::string> without_loss_scale(std::vector<std::string> names) {
  const auto scale = std::find_if(names.begin(), names.end(), [](const std::string& n) { return n.ends_with("/dynamic_scale"); });
  if (scale == names.end()) return names;
  const std::string prefix = scale->substr(0, scale->size() - std::string_view("dynamic_scale").size());
  std::erase_if(names, [&](const std::string& n) { return n.starts_with(prefix); });
  return names;
}

}  // namespace

// The optimizer's state, when it has any to save (it is built: the model has trained).
std::vector<Optimizer::StateValue> Model::optimizer_state() const {
  if (!compiled_ || !options_.optimizer.get()) return {};
  return options_.optimizer.get()->keras_state(trainable_weights());
}

void Model::restore_optimizer_state(std::vector<Optimizer::StateValue> state, const std::string& where) {
  if (!compiled_ || state.empty()) return;
  Optimizer& optimizer = *options_.optimizer.get();
  try {
    const std::string& first = state[0].name;
    if (first.ends_with("/iter:0")) {
      optimizer.set_keras2_state(trainable_weights(), state);
      return;
    }
    optimizer.set_keras_state(trainable_weights(), state);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", where, e.what()));
  }
}

std::vector<LayerPtr> Model::layers_for_saving() {
  (void)inputs();  // builds every layer's weights
  return layers_;
}

void Model::save_weights(const std::string& path) { save_weights(path, {}); }

void Model::save_weights(const std::string& path, const std::map<std::string, std::string>& root_attributes) {
  if (!is_keras3_weights_file(path) && !is_legacy_h5_file(path))
    throw std::invalid_argument(fmt::format("save_weights: '{}': the file name must end in .weights.h5 (Keras 3) or .h5 (legacy HDF5)", path));
  const auto layers = layers_for_saving();
  io::AtomicFile out(path);
  {
    io::h5::File file = io::h5::File::create(out.temp_path());
    if (is_keras3_weights_file(path)) write_keras3_weights(file, layers);
    else write_legacy_weights(file, layers);
    for (const auto& [key, value] : root_attributes) file.set_attribute(key, value);
    file.close();
  }
  out.commit();
}

std::vector<std::string> keras3_layer_keys(const std::vector<LayerPtr>& layers) {
  std::map<std::string, int> used;
  std::vector<std::string> keys;
  for (const auto& layer : layers) {
    // Keras's model.layers leaves operations out, so they take no key (and have no weights).
    if (dynamic_cast<const KerasOp*>(layer.get())) {
      keys.emplace_back();
      continue;
    }
    // The key comes from the Python class, whose name differs from the exported one for GroupQueryAttention.
    const std::string python_class = layer->class_name() == "GroupQueryAttention" ? "GroupedQueryAttention" : layer->class_name();
    std::string key = to_snake_case(python_class);
    auto [it, fresh] = used.emplace(key, 0);
    if (!fresh) key = fmt::format("{}_{}", key, ++it->second);
    keys.push_back(key);
  }
  return keys;
}

void Model::write_keras3_weights(io::h5::Group& root, const std::vector<LayerPtr>& layers) const {
  const auto keys = keras3_layer_keys(layers);
  io::h5::Group layers_group = root.create_group("layers");
  for (std::size_t i = 0; i < layers.size(); ++i)
    for (const auto& [path, weights] : layers[i]->saved_variable_groups()) {
      io::h5::Group vars = layers_group.create_group(keys[i] + "/" + path);
      vars.set_attribute("name", layers[i]->name());
      for (std::size_t w = 0; w < weights.size(); ++w) {
        const auto values = weights[w]->to_vector();
        vars.write_floats(std::to_string(w), weights[w]->shape(), values.data());
      }
    }
  root.create_group("vars").set_attribute("name", name_);
  const auto state = optimizer_state();
  if (!state.empty()) {
    io::h5::Group vars = root.create_group("optimizer/vars");
    vars.set_attribute("name", optimizer_name(*options_.optimizer.get()));
    for (std::size_t i = 0; i < state.size(); ++i) vars.write_floats(std::to_string(i), state[i].shape, state[i].values.data());
  }
}

void Model::write_legacy_weights(io::h5::Group& group, const std::vector<LayerPtr>& layers) const {
  std::vector<std::string> names;
  for (const auto& layer : layers) names.push_back(layer->name());
  group.set_attribute("layer_names", names);
  group.set_attribute("backend", std::string("strata"));
  group.set_attribute("keras_version", std::string(kKerasLayoutVersion));
  // Keras names each weight by its path: "<model>/<layer>/<weight>" in a Sequential, "<layer>/<weight>" otherwise.
  const std::string prefix = class_name() == "Sequential" ? name_ + "/" : "";
  for (const auto& layer : layers) {
    io::h5::Group g = group.create_group(layer->name());
    std::vector<std::string> weight_names;
    for (const auto& w : layer->weights()) weight_names.push_back(prefix + layer->saved_weight_name(*w));
    g.set_attribute("weight_names", weight_names);
    for (std::size_t i = 0; i < weight_names.size(); ++i) {
      const auto values = layer->weights()[i]->to_vector();
      g.write_floats(weight_names[i], layer->weights()[i]->shape(), values.data());
    }
  }
  io::h5::Group top = group.create_group("top_level_model_weights");
  top.set_attribute("weight_names", std::vector<std::string>{});
}

Json Model::training_config() {
  if (!compiled_) return Json::object();
  Json c;
  auto serialize = [](const std::shared_ptr<Loss>& loss) {
    return loss ? Json{{"module", "keras.losses"}, {"class_name", loss->class_name()}, {"config", loss->get_config()}, {"registered_name", nullptr}}
                : Json(nullptr);
  };
  auto metric_names = [](const std::vector<MetricRef>& refs) {
    Json names = Json::array();
    for (const MetricRef& m : refs) names.push_back(m.metric() ? m.metric()->name() : m.name());
    return names;
  };
  c["loss"] = serialize(options_.loss.get());
  c["metrics"] = metric_names(options_.metrics);
  c["loss_weights"] = nullptr;
  if (!options_.output_losses.empty() || !options_.loss_weights.empty() || !options_.output_metrics.empty()) {
    // Keras's dict forms, keyed by output name, complete for every output.
    Json losses = Json::object(), weights = Json::object(), metrics = Json::object();
    for (const std::string& name : output_names()) {
      auto l = options_.output_losses.find(name);
      losses[name] = serialize(l != options_.output_losses.end() ? l->second.get() : options_.loss.get());
      auto w = options_.loss_weights.find(name);
      weights[name] = w != options_.loss_weights.end() ? w->second : 1.f;
      auto m = options_.output_metrics.find(name);
      metrics[name] = metric_names(m != options_.output_metrics.end() ? m->second : options_.metrics);
    }
    c["loss"] = losses;
    c["metrics"] = metrics;
    if (!options_.loss_weights.empty()) c["loss_weights"] = weights;
  }
  c["weighted_metrics"] = nullptr;
  c["run_eagerly"] = false;
  c["steps_per_execution"] = 1;
  c["jit_compile"] = false;
  const auto& optimizer = options_.optimizer.get();
  c["optimizer_config"] = {{"class_name", optimizer->class_name()}, {"config", optimizer->get_config()}};
  return c;
}

void Model::save(const std::string& path) {
  if (is_keras_archive(path)) {
    save_keras_archive(path);
    return;
  }
  if (!is_legacy_h5_file(path) || is_keras3_weights_file(path))
    throw std::invalid_argument(fmt::format("save: '{}': the file name must end in .keras or .h5 (a whole model, as Keras saves it)", path));
  const auto layers = layers_for_saving();
  const Json config = to_json();
  const Json training = training_config();
  io::AtomicFile out(path);
  {
    io::h5::File file = io::h5::File::create(out.temp_path());
    file.set_attribute("backend", std::string("strata"));
    file.set_attribute("keras_version", std::string(kKerasLayoutVersion));
    file.set_attribute("model_config", config.dump());
    if (!training.empty()) file.set_attribute("training_config", training.dump());
    io::h5::Group weights = file.create_group("model_weights");
    write_legacy_weights(weights, layers);
    const auto state = optimizer_state();
    if (!state.empty()) {
      io::h5::Group g = file.create_group("optimizer_weights");
      const std::string prefix = optimizer_name(*options_.optimizer.get()) + "/";
      std::vector<std::string> names;
      for (const auto& v : state) names.push_back(prefix + v.name);
      g.set_attribute("weight_names", names);
      for (std::size_t i = 0; i < state.size(); ++i) g.write_floats(names[i], state[i].shape, state[i].values.data());
    }
    file.close();
  }
  out.commit();
}

void Model::save_keras_archive(const std::string& path) {
  const auto layers = layers_for_saving();
  Json config = to_json();
  if (!inputs_.empty()) config["build_config"] = {{"input_shape", config::shape_to_json(inputs_[0].shape())}};
  if (compiled_) {
    Json compile = training_config();
    const Json optimizer = compile.at("optimizer_config");
    compile.erase("optimizer_config");
    compile["optimizer"] = {{"module", "keras.optimizers"}, {"class_name", optimizer.at("class_name")}, {"config", optimizer.at("config")},
                            {"registered_name", nullptr}};
    config["compile_config"] = compile;
  }
  const ScratchFile weights(path, ".weights.h5");
  {
    io::h5::File file = io::h5::File::create(weights.path);
    write_keras3_weights(file, layers);
    file.close();
  }
  const Json metadata = {{"keras_version", kKerasLayoutVersion}, {"date_saved", date_saved()}};
  io::AtomicFile out(path);
  io::write_zip(out.temp_path(), {{"metadata.json", metadata.dump()}, {"config.json", config.dump()}, {"model.weights.h5", read_file(weights.path)}});
  out.commit();
}

namespace {

// Compiles `model` from a training_config (.h5) or compile_config (.keras): optimizer, loss, metrics.
// Keras's metrics entry: a list of names or serialized metrics.
std::vector<MetricRef> metrics_from(const Json& list) {
  std::vector<MetricRef> metrics;
  for (const Json& m : list.is_array() ? list : Json::array({list})) {
    if (m.is_null()) continue;
    if (m.is_string()) metrics.emplace_back(m.get<std::string>());
    else metrics.emplace_back(get_metric(m));
  }
  return metrics;
}

void compile_from(Model& model, const Json& training) {
  const Json* optimizer = nullptr;
  if (training.contains("optimizer_config") && !training.at("optimizer_config").is_null()) optimizer = &training.at("optimizer_config");
  else if (training.contains("optimizer") && !training.at("optimizer").is_null()) optimizer = &training.at("optimizer");
  // Keras compiles with its default optimizer when the config names none.
  CompileOptions options{.optimizer = optimizer ? get_optimizer(*optimizer) : get_optimizer("rmsprop")};
  // Losses, weights and metrics come as one value, a list in output order, or a dict by output name.
  const std::vector<std::string> names = model.output_names();
  auto per_output = [&](const char* key, auto&& one, auto&& many) {
    if (!training.contains(key) || training.at(key).is_null()) return;
    const Json& v = training.at(key);
    if (v.is_object() && !v.contains("class_name")) {
      for (const auto& [name, value] : v.items()) many(name, value);
    } else if (v.is_array() && (std::string(key) != "metrics" || (!v.empty() && v[0].is_array()))) {
      if (v.size() != names.size())
        throw std::invalid_argument(fmt::format("compile config: '{}' has {} entries for {} outputs", key, v.size(), names.size()));
      for (std::size_t i = 0; i < names.size(); ++i) many(names[i], v[i]);
    } else {
      one(v);
    }
  };
  per_output(
      "loss", [&](const Json& v) { options.loss = get_loss(v); },
      [&](const std::string& name, const Json& v) {
        if (!v.is_null()) options.output_losses[name] = get_loss(v);
      });
  per_output(
      "loss_weights", [&](const Json& v) { throw std::invalid_argument(fmt::format("compile config: loss_weights {} must be a list or a dict", v.dump())); },
      [&](const std::string& name, const Json& v) { options.loss_weights[name] = v.get<float>(); });
  per_output(
      "metrics", [&](const Json& v) { options.metrics = metrics_from(v); },
      [&](const std::string& name, const Json& v) { options.output_metrics[name] = metrics_from(v); });
  model.compile(std::move(options));
}

std::unique_ptr<Model> load_keras_archive(const std::string& path, bool compile) {
  std::string config_text, weights_bytes;
  for (io::ZipMember& m : io::read_zip(path)) {
    if (m.name == "config.json") config_text = std::move(m.data);
    else if (m.name == "model.weights.h5") weights_bytes = std::move(m.data);
  }
  if (config_text.empty()) throw std::runtime_error(fmt::format("{}: no config.json in the archive", path));
  Json config;
  try {
    config = Json::parse(config_text);
  } catch (const Json::exception& e) {
    throw std::runtime_error(fmt::format("{}: config.json is not valid JSON: {}", path, e.what()));
  }
  std::unique_ptr<Model> model;
  try {
    model = model_from_json(config);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: config.json: {}", path, e.what()));
  }
  if (compile && config.contains("compile_config") && config.at("compile_config").is_object() && !config.at("compile_config").empty())
    compile_from(*model, config.at("compile_config"));
  if (!weights_bytes.empty()) {
    const ScratchFile weights(path, ".weights.h5");
    {
      std::ofstream out(weights.path, std::ios::binary);
      out.write(weights_bytes.data(), std::streamsize(weights_bytes.size()));
      if (!out) throw std::runtime_error(fmt::format("{}: cannot unpack model.weights.h5", path));
    }
    try {
      model->load_weights(weights.path);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}: model.weights.h5: {}", path, e.what()));
    }
  }
  return model;
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path, bool compile) {
  if (is_keras_archive(path)) return load_keras_archive(path, compile);
  if (!is_legacy_h5_file(path) || is_keras3_weights_file(path))
    throw std::invalid_argument(fmt::format("load_model: '{}': expected a whole model saved as .keras or .h5", path));
  Json config, training;
  {
    io::h5::File file = io::h5::File::open(path);
    if (!file.has_attribute("model_config"))
      throw std::runtime_error(fmt::format("{}: no model_config attribute: a weights-only file (use load_weights on a model you build)", path));
    try {
      config = Json::parse(file.string_attribute("model_config"));
      if (file.has_attribute("training_config")) training = Json::parse(file.string_attribute("training_config"));
    } catch (const Json::exception& e) {
      throw std::runtime_error(fmt::format("{}: model_config or training_config is not valid JSON: {}", path, e.what()));
    }
  }
  std::unique_ptr<Model> model;
  try {
    model = model_from_json(config);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  // Compiled first, so that the optimizer state in the file has an optimizer to go to.
  if (compile && training.is_object() && training.contains("optimizer_config") && !training.at("optimizer_config").is_null())
    compile_from(*model, training);
  model->load_weights(path);
  return model;
}

void Model::load_weights(const std::string& path, LoadWeightsOptions options) {
  const auto layers = layers_for_saving();
  io::h5::File file = io::h5::File::open(path);
  // A whole-model legacy file keeps the weights under model_weights; a weights-only one at the root.
  if (file.is_group("layers") && !file.has_attribute("layer_names")) {
    if (options.by_name) throw std::invalid_argument(fmt::format("load_weights: {}: by_name applies to legacy .h5 files only", path));
    read_keras3_weights(file, layers, options);
    // A mixed-precision model's LossScaleOptimizer lists its own variables before the configured
    // optimizer's, which are also saved alone under inner_optimizer: float32 training needs only those.
    for (const char* vars_path : {"optimizer/inner_optimizer/vars", "optimizer/vars"}) {
      if (!file.is_group(vars_path)) continue;
      const io::h5::Group vars = file.group(vars_path);
      std::vector<std::string> names;
      for (std::size_t i = 0; vars.is_dataset(std::to_string(i)); ++i) names.push_back(std::to_string(i));
      restore_optimizer_state(read_state_values(vars, names, false), fmt::format("{}: {}", path, vars_path));
      break;
    }
  } else if (file.is_group("model_weights")) {
    io::h5::Group g = file.group("model_weights");
    read_legacy_weights(g, layers, options);
    if (file.is_group("optimizer_weights")) {
      const io::h5::Group opt = file.group("optimizer_weights");
      restore_optimizer_state(read_state_values(opt, without_loss_scale(opt.string_list_attribute("weight_names")), true),
                              path + ": optimizer_weights");
    }
  } else {
    read_legacy_weights(file, layers, options);
  }
  // Values change in place: compiled programs stay valid (fit() may be running: BackupAndRestore).
}

void Model::read_keras3_weights(const io::h5::Group& root, const std::vector<LayerPtr>& layers, LoadWeightsOptions options) {
  const auto keys = keras3_layer_keys(layers);
  const io::h5::Group layers_group = root.group("layers");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string where = fmt::format("{}: layers/{} (layer '{}')", root.file_name(), keys[i], layers[i]->name());
    // Every group is checked before any value is assigned, so a mismatch leaves the layer as it was.
    std::vector<std::pair<VariablePtr, io::h5::FloatArray>> values;
    std::string mismatch;
    for (const auto& [path, weights] : layers[i]->saved_variable_groups()) {
      const std::string vars_path = keys[i] + "/" + path;
      if (!layers_group.is_group(vars_path)) {
        if (weights.empty()) continue;
        throw std::runtime_error(fmt::format("{}: {} is not in the file, which holds layers [{}]", where, path, fmt::join(layers_group.members(), ", ")));
      }
      const io::h5::Group vars = layers_group.group(vars_path);
      std::size_t stored = 0;
      while (vars.is_dataset(std::to_string(stored))) ++stored;
      if (stored != weights.size()) {
        if (mismatch.empty()) mismatch = fmt::format("{}: the model's layer has {} weights in {}, the file {}", where, weights.size(), path, stored);
        continue;
      }
      for (std::size_t w = 0; w < weights.size(); ++w) {
        auto value = vars.read_floats(std::to_string(w), std::max<std::int64_t>(weights[w]->shape().numel(), 1));
        if (value.shape != weights[w]->shape() && mismatch.empty())
          mismatch = fmt::format("{}: weight '{}' has shape {} in the model but {} in the file", where, weights[w]->name(),
                                 shape_string(weights[w]->shape()), shape_string(value.shape));
        values.emplace_back(weights[w], std::move(value));
      }
    }
    if (!mismatch.empty()) {
      if (options.skip_mismatch) continue;
      throw std::runtime_error(mismatch);
    }
    for (auto& [variable, value] : values) variable->assign(value.values);
  }
}

void Model::read_legacy_weights(const io::h5::Group& group, const std::vector<LayerPtr>& layers, LoadWeightsOptions options) {
  const std::string file_name = group.file_name();
  const auto layer_names = group.string_list_attribute("layer_names");
  if (layer_names.empty() && !group.has_attribute("layer_names"))
    throw std::runtime_error(fmt::format("{}: no 'layer_names' attribute: not a Keras weights file", file_name));
  // The file's layers that hold weights, with their weight names (Keras's filtered_layer_names).
  struct Stored {
    std::string name;
    std::vector<std::string> weight_names;
  };
  std::vector<Stored> stored;
  for (const auto& name : layer_names) {
    if (!group.is_group(name)) throw std::runtime_error(fmt::format("{}: layer '{}' is listed in layer_names but has no group", file_name, name));
    const io::h5::Group g = group.group(name);
    auto weight_names = g.string_list_attribute("weight_names");
    if (!weight_names.empty()) stored.push_back({name, std::move(weight_names)});
  }
  std::vector<LayerPtr> with_weights;
  for (const auto& l : layers)
    if (!l->weights().empty()) with_weights.push_back(l);

  auto load_layer = [&](const LayerPtr& layer, const Stored& s) {
    const std::string where = fmt::format("{}: layer '{}' (named '{}' in the file)", file_name, layer->name(), s.name);
    const auto& weights = layer->weights();
    if (weights.size() != s.weight_names.size()) {
      if (options.skip_mismatch) return;
      throw std::runtime_error(fmt::format("{}: the model's layer has {} weights, the file {}", where, weights.size(), s.weight_names.size()));
    }
    const io::h5::Group g = group.group(s.name);
    std::vector<io::h5::FloatArray> values;
    for (std::size_t w = 0; w < weights.size(); ++w) {
      values.push_back(g.read_floats(s.weight_names[w], std::max<std::int64_t>(weights[w]->shape().numel(), 1)));
      if (values.back().shape != weights[w]->shape()) {
        if (options.skip_mismatch) return;
        throw std::runtime_error(fmt::format("{}: weight '{}' has shape {} in the model but {} in the file ('{}')", where, weights[w]->name(),
                                             shape_string(weights[w]->shape()), shape_string(values.back().shape), s.weight_names[w]));
      }
    }
    std::string unused;
    for (std::size_t w = 0; w < weights.size(); ++w) assign_checked(weights[w], values[w], where, unused);
  };

  if (options.by_name) {
    for (const auto& s : stored)
      for (const auto& layer : with_weights)
        if (layer->name() == s.name) load_layer(layer, s);
    return;
  }
  if (stored.size() != with_weights.size())
    throw std::runtime_error(fmt::format("{}: the model has {} layers with weights, the file {} ({})", file_name, with_weights.size(),
                                         stored.size(), [&] {
                                           std::vector<std::string> names;
                                           for (const auto& s : stored) names.push_back(s.name);
                                           return fmt::format("{}", fmt::join(names, ", "));
                                         }()));
  for (std::size_t i = 0; i < stored.size(); ++i) load_layer(with_weights[i], stored[i]);
}

}  // namespace strata
