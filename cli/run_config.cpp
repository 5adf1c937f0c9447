#include "cli/run_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>

#include "cli/arrays.h"
#include "cli/tensorboard.h"
#include "io/hdf5.h"
#include "layers/input_layer.h"
#include "layers/registry.h"

namespace strata::cli {

namespace {

namespace fs = std::filesystem;

class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)), dir_(fs::path(path_).parent_path()) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& message) const {
    const YAML::Mark m = at.Mark();
    if (m.is_null() || m.line < 0) throw ConfigError(fmt::format("{}: {}", path_, message));
    throw ConfigError(fmt::format("{}:{}:{}: {}", path_, m.line + 1, m.column + 1, message));
  }

  void check_keys(const YAML::Node& map, const char* what, const std::vector<std::string>& known) const {
    if (!map.IsMap()) fail(map, fmt::format("{} must be a mapping of keys to values", what));
    for (const auto& kv : map) {
      const std::string key = kv.first.as<std::string>();
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      const std::string near = closest_match(key, known);
      fail(kv.first, near.empty() ? fmt::format("unknown key '{}' in {} (known: {})", key, what, fmt::join(known, ", "))
                                  : fmt::format("unknown key '{}' in {}; did you mean '{}'?", key, what, near));
    }
  }

  template <class T>
  T get(const YAML::Node& node, const char* what, const char* type) const {
    try {
      return node.as<T>();
    } catch (const YAML::Exception&) {
      fail(node, fmt::format("'{}' must be {}", what, type));
    }
  }

  // A YAML value as JSON, for Keras configs: numbers, booleans and null typed as YAML 1.2 reads them.
  Json to_json(const YAML::Node& node) const {
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined: return nullptr;
      case YAML::NodeType::Sequence: {
        Json a = Json::array();
        for (const auto& e : node) a.push_back(to_json(e));
        return a;
      }
      case YAML::NodeType::Map: {
        Json o = Json::object();
        for (const auto& kv : node) o[kv.first.as<std::string>()] = to_json(kv.second);
        return o;
      }
      case YAML::NodeType::Scalar: break;
    }
    const std::string s = node.Scalar();
    if (node.Tag() == "!") return s;  // quoted: a string
    if (s == "true" || s == "True") return true;
    if (s == "false" || s == "False") return false;
    if (s == "null" || s == "~" || s == "None") return nullptr;
    try {
      std::size_t used = 0;
      const long long i = std::stoll(s, &used);
      if (used == s.size()) return i;
      const double d = std::stod(s, &used);
      if (used == s.size()) return d;
    } catch (const std::exception&) {
    }
    return s;
  }

  std::string file(const YAML::Node& node, const char* what) const {
    const std::string name = get<std::string>(node, what, "a file name");
    const fs::path p = fs::path(name).is_absolute() ? fs::path(name) : dir_ / name;
    if (!fs::exists(p)) fail(node, fmt::format("{}: no such file '{}'", what, p.string()));
    return p.string();
  }

  // "1/255" or a number.
  float scale(const YAML::Node& node) const {
    const std::string s = node.Scalar();
    const auto slash = s.find('/');
    try {
      if (slash != std::string::npos) return std::stof(s.substr(0, slash)) / std::stof(s.substr(slash + 1));
      return std::stof(s);
    } catch (const std::exception&) {
      fail(node, fmt::format("scale must be a number or a fraction such as 1/255, got '{}'", s));
    }
  }

  // y: one source, or a list of them (one per model output).
  template <class Read>
  static std::vector<Array> each_target(const YAML::Node& y, Read&& read) {
    std::vector<Array> out;
    if (y.IsSequence())
      for (const auto& e : y) out.push_back(read(e));
    else
      out.push_back(read(y));
    return out;
  }

  // outputs: the model's output names, which a CSV `labels` mapping is keyed by.
  Dataset dataset(const YAML::Node& node, const char* what, const std::vector<std::string>& outputs) const {
    check_keys(node, what, {"x", "y", "csv", "features", "labels", "scale", "h5"});
    Dataset d;
    auto names = [&](const char* key) {
      std::vector<std::string> out;
      if (!node[key]) return out;
      if (node[key].IsSequence()) out = get<std::vector<std::string>>(node[key], key, "a list of column names");
      else out.push_back(get<std::string>(node[key], key, "a column name"));
      return out;
    };
    try {
      if (node["csv"]) {
        if (node["x"] || node["y"]) fail(node, fmt::format("{}: give either csv or x and y", what));
        if (!node["labels"]) fail(node, fmt::format("{}: 'labels' names the CSV column(s) to predict", what));
        const std::string csv = file(node["csv"], "csv");
        // labels: column(s) of the one output, or {output name: column(s)} for several.
        std::vector<std::vector<std::string>> per_output;
        if (node["labels"].IsMap()) {
          for (const auto& kv : node["labels"])
            if (std::find(outputs.begin(), outputs.end(), kv.first.as<std::string>()) == outputs.end())
              fail(kv.first, fmt::format("'{}' is not an output of the model (outputs: {})", kv.first.as<std::string>(), fmt::join(outputs, ", ")));
          for (const auto& out : outputs) {
            if (!node["labels"][out]) fail(node["labels"], fmt::format("labels: no column for output '{}'", out));
            const YAML::Node cols = node["labels"][out];
            per_output.push_back(cols.IsSequence() ? get<std::vector<std::string>>(cols, "labels", "column names")
                                                   : std::vector<std::string>{get<std::string>(cols, "labels", "a column name")});
          }
        } else {
          per_output.push_back(names("labels"));
        }
        std::vector<std::string> all_labels;
        for (const auto& cols : per_output) all_labels.insert(all_labels.end(), cols.begin(), cols.end());
        d.x = read_csv_columns(csv, names("features"), all_labels);
        for (const auto& cols : per_output) {
          Array y = read_csv_columns(csv, cols);
          d.y.push_back(cols.size() == 1 ? y.reshaped({y.rows()}) : y);
        }
      } else if (node["h5"]) {
        // Datasets of an HDF5 file by path (x: /train/images), read as float32.
        if (!node["x"] || !node["y"]) fail(node, fmt::format("{}: h5 needs x and y, the datasets' paths in the file", what));
        const io::h5::File h5 = io::h5::File::open(file(node["h5"], "h5"));
        auto dataset = [&](const YAML::Node& at) {
          std::string name = get<std::string>(at, "x / y", "a dataset path");
          name.erase(0, name.find_first_not_of('/'));  // paths from the root, with or without the leading slash
          io::h5::FloatArray a = h5.read_floats(name);
          return Array::from_floats(std::move(a.values), a.shape);
        };
        d.x = dataset(node["x"]);
        d.y = each_target(node["y"], dataset);
      } else {
        if (!node["x"] || !node["y"]) fail(node, fmt::format("{} needs x and y (IDX or .npy files), h5 with x and y, or csv", what));
        auto array_file = [&](const YAML::Node& at) { return read_array_file(file(at, "y")); };
        d.x = read_array_file(file(node["x"], "x"));
        d.y = each_target(node["y"], array_file);
      }
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      fail(node, e.what());
    }
    if (node["scale"]) d.x = d.x.scaled(d.x.scale() * scale(node["scale"]));
    for (const Array& y : d.y)
      if (d.x.rows() != y.rows()) fail(node, fmt::format("{}: {} samples of x but {} of y", what, d.x.rows(), y.rows()));
    return d;
  }

  // A Keras object by name ("adam"), {ClassName: {config}} or {class_name: ..., config: ...}.
  Json keras_object(const YAML::Node& node) const {
    if (node.IsScalar()) return node.Scalar();
    if (node.IsMap() && node["class_name"]) return to_json(node);
    if (node.IsMap() && node.size() == 1) {
      const auto kv = *node.begin();
      return Json{{"class_name", kv.first.as<std::string>()}, {"config", kv.second.IsNull() ? Json::object() : to_json(kv.second)}};
    }
    fail(node, "expected a name, {ClassName: {config}} or {class_name: ..., config: ...}");
  }

  std::unique_ptr<Model> model(const YAML::Node& node) const {
    if (node.IsMap()) return functional(node);
    if (!node.IsSequence()) fail(node, "model must be a list of layers (a Sequential) or {inputs, outputs, layers} (a functional graph)");
    auto model = std::make_unique<Sequential>();
    for (const auto& entry : node) model->add(layer(entry, {}));
    return model;
  }

  // One layer entry, {ClassName: {config}}; `extra` keys (name, inputs) are the graph's, not the layer's.
  LayerPtr layer(const YAML::Node& entry, const std::vector<std::string>& extra) const {
    // yaml-cpp nodes are references: the layer's own part is a fresh node, so that entry stays as it is.
    const bool graph_entry = entry.IsMap() && !extra.empty();
    YAML::Node own(YAML::NodeType::Map);
    if (graph_entry) {
      for (const auto& kv : entry) {
        const std::string key = kv.first.as<std::string>();
        if (std::find(extra.begin(), extra.end(), key) == extra.end()) own[key] = kv.second;
      }
      if (own.size() != 1) fail(entry, "a layer entry is {ClassName: {config}}, with optional name and inputs");
    }
    Json spec = keras_object(graph_entry ? own : entry);
    if (!spec.is_object()) fail(entry, fmt::format("layer '{}' needs its config: {{{}: {{...}}}}", spec.get<std::string>(), spec.get<std::string>()));
    if (entry.IsMap() && entry["name"]) spec["config"]["name"] = get<std::string>(entry["name"], "name", "a string");
    try {
      return layer_from_json(spec);
    } catch (const std::exception& e) {
      fail(entry, e.what());
    }
  }

  // model: {inputs: [names], outputs: [names], layers: [{name: n, ClassName: {config}, inputs: [names]}]}:
  // each layer is called on the outputs of the layers it names ("name:1" for a layer's second output).
  std::unique_ptr<Model> functional(const YAML::Node& node) const {
    check_keys(node, "model", {"inputs", "outputs", "layers", "name"});
    for (const char* key : {"inputs", "outputs", "layers"})
      if (!node[key]) fail(node, fmt::format("a functional model needs '{}'", key));
    if (!node["layers"].IsSequence()) fail(node["layers"], "layers must be a list");
    GraphScope scope(std::make_shared<Graph>());
    std::map<std::string, std::vector<Tensor>> produced;
    auto names = [&](const YAML::Node& n, const char* what) {
      std::vector<std::string> out;
      if (n.IsSequence()) out = get<std::vector<std::string>>(n, what, "a list of layer names");
      else out.push_back(get<std::string>(n, what, "a layer name"));
      return out;
    };
    auto tensor = [&](const std::string& ref, const YAML::Node& at) {
      const auto colon = ref.rfind(':');
      const std::string layer = colon == std::string::npos ? ref : ref.substr(0, colon);
      std::size_t index = 0;
      if (colon != std::string::npos) index = std::size_t(std::stoul(ref.substr(colon + 1)));
      auto it = produced.find(layer);
      if (it == produced.end()) {
        std::vector<std::string> known;
        for (const auto& [k, v] : produced) known.push_back(k);
        const std::string near = closest_match(layer, known);
        fail(at, near.empty() ? fmt::format("no layer named '{}' before this point", layer)
                              : fmt::format("no layer named '{}' before this point; did you mean '{}'?", layer, near));
      }
      if (index >= it->second.size()) fail(at, fmt::format("layer '{}' has {} output(s), not {}", layer, it->second.size(), index + 1));
      return it->second[index];
    };
    for (const auto& entry : node["layers"]) {
      if (!entry.IsMap()) fail(entry, "a layer entry is {ClassName: {config}, name: ..., inputs: [...]}");
      const LayerPtr l = layer(entry, {"name", "inputs"});
      if (auto input = std::dynamic_pointer_cast<InputLayer>(l)) {
        produced[l->name()] = {input->output()};
        continue;
      }
      if (!entry["inputs"]) fail(entry, fmt::format("layer '{}' needs inputs: the names of the layers it is called on", l->name()));
      std::vector<Tensor> args;
      for (const auto& ref : names(entry["inputs"], "inputs")) args.push_back(tensor(ref, entry["inputs"]));
      try {
        produced[l->name()] = l->apply(args);
      } catch (const std::exception& e) {
        fail(entry, e.what());
      }
    }
    std::vector<Tensor> inputs, outputs;
    for (const auto& ref : names(node["inputs"], "inputs")) inputs.push_back(tensor(ref, node["inputs"]));
    for (const auto& ref : names(node["outputs"], "outputs")) outputs.push_back(tensor(ref, node["outputs"]));
    try {
      return std::make_unique<Model>(inputs, outputs, node["name"] ? get<std::string>(node["name"], "name", "a string") : std::string());
    } catch (const std::exception& e) {
      fail(node, e.what());
    }
  }

  CallbackPtr callback(const YAML::Node& entry, const fs::path& output_dir) const {
    const Json spec = keras_object(entry);
    const std::string cls = spec.is_string() ? spec.get<std::string>() : spec.value("class_name", std::string());
    const Json c = spec.is_object() ? spec.value("config", Json::object()) : Json::object();
    const YAML::Node config = entry.IsMap() && entry.size() == 1 ? entry.begin()->second : entry;
    auto keys = [&](const std::vector<std::string>& known) {
      if (config.IsMap()) check_keys(config, cls.c_str(), known);
    };
    auto in_output = [&](const char* key) {
      if (!c.contains(key) || !c.at(key).is_string()) fail(entry, fmt::format("{}: '{}' (a file name) is required", cls, key));
      const fs::path p = c.at(key).get<std::string>();
      return (p.is_absolute() ? p : output_dir / p).string();
    };
    // A config key into an option of the same name and type, kept at its default when absent.
    auto read = [&](auto& field, const char* key) {
      if (c.contains(key) && !c.at(key).is_null()) field = c.at(key).get<std::remove_reference_t<decltype(field)>>();
    };
    try {
      if (cls == "EarlyStopping") {
        keys({"monitor", "min_delta", "patience", "verbose", "mode", "baseline", "restore_best_weights", "start_from_epoch"});
        EarlyStoppingOptions o;
        read(o.monitor, "monitor");
        read(o.min_delta, "min_delta");
        read(o.patience, "patience");
        read(o.verbose, "verbose");
        read(o.mode, "mode");
        if (c.contains("baseline") && !c.at("baseline").is_null()) o.baseline = c.at("baseline").get<double>();
        read(o.restore_best_weights, "restore_best_weights");
        read(o.start_from_epoch, "start_from_epoch");
        return std::make_shared<EarlyStopping>(o);
      }
      if (cls == "ModelCheckpoint") {
        keys({"filepath", "monitor", "verbose", "save_best_only", "save_weights_only", "mode", "save_freq", "initial_value_threshold"});
        ModelCheckpointOptions o;
        read(o.monitor, "monitor");
        read(o.verbose, "verbose");
        read(o.save_best_only, "save_best_only");
        read(o.save_weights_only, "save_weights_only");
        read(o.mode, "mode");
        if (c.contains("save_freq") && c.at("save_freq").is_number_integer()) o.save_freq = c.at("save_freq").get<int>();
        if (c.contains("initial_value_threshold") && !c.at("initial_value_threshold").is_null())
          o.initial_value_threshold = c.at("initial_value_threshold").get<double>();
        return std::make_shared<ModelCheckpoint>(in_output("filepath"), o);
      }
      if (cls == "CSVLogger") {
        keys({"filename", "separator", "append"});
        return std::make_shared<CSVLogger>(in_output("filename"), c.value("separator", std::string(",")), c.value("append", false));
      }
      if (cls == "ReduceLROnPlateau") {
        keys({"monitor", "factor", "patience", "verbose", "mode", "min_delta", "cooldown", "min_lr"});
        ReduceLROnPlateauOptions o;
        read(o.monitor, "monitor");
        read(o.factor, "factor");
        read(o.patience, "patience");
        read(o.verbose, "verbose");
        read(o.mode, "mode");
        read(o.min_delta, "min_delta");
        read(o.cooldown, "cooldown");
        read(o.min_lr, "min_lr");
        return std::make_shared<ReduceLROnPlateau>(o);
      }
      if (cls == "LearningRateScheduler") {
        // The schedule by Keras's class name and arguments, evaluated at the epoch index.
        keys({"schedule", "verbose"});
        if (!config["schedule"]) fail(entry, "LearningRateScheduler: 'schedule' is required, e.g. {ExponentialDecay: {initial_learning_rate: 0.01, decay_steps: 1, decay_rate: 0.9}}");
        const Json schedule = keras_object(config["schedule"]);
        if (!schedule.is_object()) fail(config["schedule"], "LearningRateScheduler: the schedule needs its arguments: {ClassName: {...}}");
        return std::make_shared<LearningRateScheduler>(schedule_from_json(schedule), c.value("verbose", 0));
      }
      if (cls == "TensorBoard") {
        keys({"log_dir", "histogram_freq", "write_graph", "write_images", "write_steps_per_second", "update_freq", "profile_batch",
              "embeddings_freq", "embeddings_metadata"});
        if (c.value("histogram_freq", 0) != 0 || c.value("write_images", false) || c.value("embeddings_freq", 0) != 0 ||
            (c.contains("update_freq") && c.at("update_freq") != "epoch"))
          fail(entry, "TensorBoard: strata writes the epoch scalars only (histogram_freq 0, update_freq epoch, no images or embeddings)");
        const fs::path log_dir = c.value("log_dir", std::string("logs"));
        return std::make_shared<TensorBoard>((log_dir.is_absolute() ? log_dir : output_dir / log_dir).string());
      }
      if (cls == "TerminateOnNaN") {
        keys({});
        return std::make_shared<TerminateOnNaN>();
      }
      if (cls == "SwapEMAWeights") {
        keys({"swap_on_epoch"});
        bool swap_on_epoch = false;
        read(swap_on_epoch, "swap_on_epoch");
        return std::make_shared<SwapEMAWeights>(swap_on_epoch);
      }
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      fail(entry, fmt::format("{}: {}", cls, e.what()));
    }
    const std::vector<std::string> supported = {"EarlyStopping", "ModelCheckpoint", "CSVLogger", "TerminateOnNaN", "ReduceLROnPlateau",
                                                "LearningRateScheduler", "TensorBoard", "SwapEMAWeights"};
    const std::string near = closest_match(cls, supported);
    fail(entry, near.empty() || near == cls ? fmt::format("callback '{}' is not available in strata (available: {})", cls, fmt::join(supported, ", "))
                                            : fmt::format("unknown callback '{}'; did you mean '{}'?", cls, near));
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  fs::path dir_;
};

void apply_override(YAML::Node root, const std::string& assignment, const std::string& path) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError(fmt::format("--set {}: expected key.path=value", assignment));
  std::vector<std::string> keys;
  std::stringstream ss(assignment.substr(0, eq));
  for (std::string k; std::getline(ss, k, '.');) keys.push_back(k);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("--set {}: {}", assignment, e.msg));
  }
  std::vector<YAML::Node> chain{root};
  for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node next = chain.back()[keys[i]];
    if (next && !next.IsMap()) throw ConfigError(fmt::format("{}: --set {}: '{}' is not a mapping", path, assignment, keys[i]));
    chain.push_back(next);
  }
  chain.back()[keys.back()] = value;
}

}  // namespace

RunConfig read_run_config(const std::string& path, const std::vector<std::string>& overrides, bool load_data, const std::string& output_dir) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError(fmt::format("{}: cannot open the file", path));
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}:{}:{}: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  for (const auto& o : overrides) apply_override(root, o, path);
  Reader r(path);
  if (!root.IsMap()) r.fail(root, "the file must be a mapping with data, model, optimizer, loss, ...");
  r.check_keys(root, "the config", {"data", "model", "optimizer", "loss", "loss_weights", "metrics", "training", "callbacks", "backend"});
  for (const char* required : {"model", "loss"})
    if (!root[required]) r.fail(root, fmt::format("'{}' is missing", required));

  RunConfig c;
  c.path = path;
  if (const YAML::Node t = root["training"]) {
    r.check_keys(t, "training", {"epochs", "batch_size", "shuffle", "seed", "verbose"});
    if (t["epochs"]) c.fit.epochs = r.get<int>(t["epochs"], "epochs", "an integer");
    if (t["batch_size"]) c.fit.batch_size = r.get<int>(t["batch_size"], "batch_size", "an integer");
    if (t["shuffle"]) c.fit.shuffle = r.get<bool>(t["shuffle"], "shuffle", "true or false");
    if (t["seed"]) c.seed = r.get<std::uint64_t>(t["seed"], "seed", "a non-negative integer");
    if (t["verbose"]) c.fit.verbose = r.get<int>(t["verbose"], "verbose", "0, 1 or 2");
    if (c.fit.epochs < 1) r.fail(t["epochs"], "epochs must be at least 1");
    if (c.fit.batch_size < 1) r.fail(t["batch_size"], "batch_size must be at least 1");
  }
  if (c.seed) set_random_seed(*c.seed);
  c.model = r.model(root["model"]);
  CompileOptions options;
  if (root["optimizer"]) {
    try {
      Json o = r.keras_object(root["optimizer"]);
      // A schedule as learning rate takes the same short form, {CosineDecay: {...}}, as the optimizer.
      const YAML::Node& opt = root["optimizer"];
      if (opt.IsMap() && opt.size() == 1 && !opt["class_name"] && opt.begin()->second.IsMap()) {
        const YAML::Node rate = opt.begin()->second["learning_rate"];
        if (rate && rate.IsMap()) o["config"]["learning_rate"] = r.keras_object(rate);
      }
      options.optimizer = o.is_string() ? get_optimizer(o.get<std::string>()) : get_optimizer(o);
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      r.fail(root["optimizer"], e.what());
    }
  }
  try {
    // One loss for every output, or {output name: loss} for a model of several outputs.
    const YAML::Node loss = root["loss"];
    const std::vector<std::string> outputs = c.model->output_names();
    bool per_output = loss.IsMap() && !loss["class_name"];
    if (per_output)
      for (const auto& kv : loss) per_output = per_output && std::find(outputs.begin(), outputs.end(), kv.first.as<std::string>()) != outputs.end();
    if (per_output) {
      for (const auto& kv : loss) {
        const Json l = r.keras_object(kv.second);
        options.output_losses[kv.first.as<std::string>()] = l.is_string() ? get_loss(l.get<std::string>()) : get_loss(l);
      }
    } else {
      const Json l = r.keras_object(loss);
      options.loss = l.is_string() ? get_loss(l.get<std::string>()) : get_loss(l);
    }
    if (const YAML::Node w = root["loss_weights"])
      for (const auto& kv : w) options.loss_weights[kv.first.as<std::string>()] = r.get<float>(kv.second, "loss_weights", "a number");
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    r.fail(root["loss"], e.what());
  }
  if (const YAML::Node m = root["metrics"]) {
    if (!m.IsSequence()) r.fail(m, "metrics must be a list");
    for (const auto& e : m) {
      const Json metric = r.keras_object(e);
      try {
        if (metric.is_string()) {
          if (metric != "accuracy" && metric != "acc") get_metric(metric.get<std::string>());
          options.metrics.emplace_back(metric.get<std::string>());
        } else {
          options.metrics.emplace_back(get_metric(metric));
        }
      } catch (const std::exception& ex) {
        r.fail(e, ex.what());
      }
    }
  }
  if (const YAML::Node b = root["backend"]) {
    // "cuda" trains the same model on the GPU; refused here, at its line, when this build or machine has none.
    options.backend = r.get<std::string>(b, "backend", "a backend name (cpu or cuda)");
    try {
      get_backend(options.backend);
    } catch (const std::exception& e) {
      r.fail(b, e.what());
    }
  }
  c.model->compile(std::move(options));

  if (const YAML::Node d = root["data"]) {
    r.check_keys(d, "data", {"train", "test", "validation", "validation_split", "shuffle_seed"});
    if (d["shuffle_seed"]) c.fit.shuffle_seed = r.get<std::uint64_t>(d["shuffle_seed"], "shuffle_seed", "a non-negative integer");
    if (d["validation_split"]) c.validation_split = r.get<double>(d["validation_split"], "validation_split", "a number");
    if (!(c.validation_split >= 0.0 && c.validation_split < 1.0)) r.fail(d["validation_split"], "validation_split must be in [0, 1)");
    if (load_data) {
      const std::vector<std::string> outputs = c.model->output_names();
      if (d["train"]) c.train = r.dataset(d["train"], "data.train", outputs);
      if (d["test"]) c.test = r.dataset(d["test"], "data.test", outputs);
      if (d["validation"]) c.validation = r.dataset(d["validation"], "data.validation", outputs);
    }
  }
  c.fit.validation_split = c.validation_split;
  if (const YAML::Node cbs = root["callbacks"]) {
    if (!cbs.IsSequence()) r.fail(cbs, "callbacks must be a list, each {ClassName: {config}}");
    for (const auto& entry : cbs) c.fit.callbacks.push_back(r.callback(entry, output_dir));
  }
  if (c.validation) c.fit.validation_data = ValidationData{{c.validation->x}, c.validation->y, {}};
  return c;
}

}  // namespace strata::cli
