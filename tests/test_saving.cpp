// Weights in Keras's HDF5 layouts: files saved by Keras 3 (and the Keras 2 layout written by h5py) load
// and predict as Keras did (scripts/fixtures/keras_checkpoints.py); every layer round-trips through both
// layouts; mismatches, truncated and foreign files fail with one clear message; saves are atomic; h5py and,
// when STRATA_KERAS_PYTHON names a Python with Keras, Keras itself read what Strata writes.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "api/strata.h"
#include "io/atomic_file.h"
#include "io/hdf5.h"
#include "io/zip.h"
#include "python_tools.h"
#include "test_util.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using test::keras_python;
using test::python_has;
using test::run_python;

const std::string kFixtures = std::string(STRATA_FIXTURES_DIR) + "/keras/";

struct Sample {
  Array x;                    // the first input
  std::vector<Array> inputs;  // every input
  std::vector<double> y;
};

Sample load_sample(const std::string& name) {
  std::ifstream in(kFixtures + name + ".json");
  const Json j = Json::parse(in);
  std::vector<float> x;
  for (const Json& v : j["x"]) x.push_back(v.get<float>());
  Sample s{Array::from_floats(x, config::shape(j["x_shape"], "x_shape")), {}, {}};
  if (!j.contains("inputs")) s.inputs.push_back(s.x);
  for (const Json& in : j.value("inputs", Json::array())) {
    std::vector<float> values;
    for (const Json& v : in["values"]) values.push_back(v.get<float>());
    s.inputs.push_back(Array::from_floats(values, config::shape(in["shape"], "shape")));
  }
  for (const Json& v : j["y"]) s.y.push_back(v.get<double>());
  return s;
}

std::unique_ptr<Model> build(const std::string& name) {
  clear_session();
  if (name == "mlp")
    return std::make_unique<Sequential>(std::vector<LayerRef>{Input({6}), Dense(5, {.activation = "relu"}), Dropout(0.2f), BatchNormalization(),
                                                              Dense(3, {.activation = "softmax"})},
                                        "mlp");
  if (name == "convnet")
    return std::make_unique<Sequential>(std::vector<LayerRef>{Input({8, 8, 2}), Conv2D(4, 3, {.padding = "same"}), BatchNormalization(),
                                                              Activation("relu"), MaxPooling2D(2), SeparableConv2D(3, 2), Flatten(), Dense(2)},
                                        "convnet");
  if (name == "functional") {
    const Tensor x = Input({7}, {.name = "features"});
    const Tensor h = Dense(4, {.activation = "tanh", .name = "hidden"})(x);
    const Tensor y = Dense(2, {.name = "head"})(Dropout(0.1f)(h));
    return std::make_unique<Model>(x, y, "functional_mlp");
  }
  if (name == "two_inputs") {
    const Tensor a = Input({5}, {.name = "a"}), b = Input({3}, {.name = "b"});
    const Tensor ha = Dense(4, {.activation = "relu", .name = "ha"})(a);
    const Tensor hb = Dense(4, {.name = "hb"})(b);
    const Tensor total = Add({.name = "total"})({ha, hb});
    const Tensor product = Multiply({.name = "product"})({ha, hb});
    const Tensor cosine = Dot(1, {.normalize = true, .name = "cosine"})({ha, hb});
    const Tensor joined = Concatenate({.name = "joined"})({total, product, cosine, b});
    const Tensor low = Minimum({.name = "low"})({joined, Subtract({.name = "diff"})({joined, joined})});
    const Tensor mixed = Average({.name = "mixed"})({Maximum({.name = "high"})({joined, low}), low});
    const Tensor y = Dense(2, {.name = "out"})(mixed);
    return std::make_unique<Model>(std::vector<Tensor>{a, b}, std::vector<Tensor>{y}, "two_inputs");
  }
  if (name == "recurrent")
    return std::make_unique<Sequential>(
        std::vector<LayerRef>{Input({6, 4}), Bidirectional(LSTM(5, {.return_sequences = true})), GRU(3), Dense(2)}, "recurrent");
  if (name == "keras2_mlp")
    return std::make_unique<Sequential>(std::vector<LayerRef>{Input({6}), Dense(5, {.activation = "relu", .name = "dense_a"}),
                                                              Dense(3, {.activation = "softmax", .name = "dense_b"})});
  throw std::invalid_argument(name);
}

void expect_predicts(Model& model, const Sample& s, const std::string& what) {
  const std::vector<float> y = model.predict(s.inputs, {.verbose = 0})[0].to_floats();
  ASSERT_EQ(y.size(), s.y.size()) << what;
  for (std::size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], s.y[i], 1e-5) << what << " at " << i;
}

class KerasFiles : public ::testing::TestWithParam<std::string> {};

TEST_P(KerasFiles, LoadAndPredictAsKeras) {
  const std::string name = GetParam();
  const Sample sample = load_sample(name);
  for (const std::string suffix : {".h5", ".weights.h5"}) {
    const std::string path = kFixtures + name + suffix;
    if (!fs::exists(path)) continue;
    SCOPED_TRACE(path);
    auto model = build(name);
    model->load_weights(path);
    expect_predicts(*model, sample, path);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, KerasFiles, ::testing::Values("mlp", "convnet", "functional", "two_inputs", "recurrent", "keras2_mlp"));

// Every layer type with weights or not, 2-D and 1-D.
std::unique_ptr<Model> every_layer_model(int rank) {
  clear_session();
  if (rank == 0)  // sequences: integer tokens in
    return std::make_unique<Sequential>(std::vector<LayerRef>{Input({7}), Embedding(12, 4), LayerNormalization(),
                                                              Bidirectional(GRU(3, {.return_sequences = true}), {.merge_mode = "ave"}),
                                                              SimpleRNN(3, {.return_sequences = true}), TimeDistributed(Dense(3)), LSTM(2),
                                                              Dense(2)});
  if (rank == 2)
    return std::make_unique<Sequential>(std::vector<LayerRef>{
        Input({10, 10, 3}), Conv2D(4, 3), BatchNormalization(), DepthwiseConv2D(3, {.depth_multiplier = 2}),
        SeparableConv2D(5, 3, {.padding = "same"}), Conv2DTranspose(3, 3, {.strides = 2}), ZeroPadding2D(1), Cropping2D({2, 1}),
        UpSampling2D(2), MaxPooling2D(2), AveragePooling2D(2), SpatialDropout2D(0.1f), Activation("relu"), GlobalAveragePooling2D(),
        Dense(4), Dropout(0.1f), Dense(2, {.activation = "softmax"})});
  return std::make_unique<Sequential>(std::vector<LayerRef>{
      Input({12, 3}), Conv1D(4, 3), DepthwiseConv1D(2), SeparableConv1D(3, 2), Conv1DTranspose(2, 3), ZeroPadding1D(1), Cropping1D(1),
      UpSampling1D(2), MaxPooling1D(2), AveragePooling1D(2), SpatialDropout1D(0.1f), GlobalMaxPooling1D(), Dense(2)});
}

// Two samples for every_layer_model(rank): images, sequences, or integer tokens.
Array sample_input(int rank) {
  if (rank == 0) return Array::from_floats({1, 5, 0, 11, 3, 3, 7, 2, 2, 9, 4, 10, 6, 8}, {2, 7});
  return Array::from_floats(test::random_vector(rank == 2 ? 2 * 300 : 2 * 36, -1, 1, 3), rank == 2 ? Shape{2, 10, 10, 3} : Shape{2, 12, 3});
}

TEST(Saving, EveryLayerRoundTripsThroughWholeModelFiles) {
  const std::string dir = ::testing::TempDir();
  for (int rank : {2, 1, 0}) {
    for (const std::string suffix : {".keras", ".h5"}) {
      SCOPED_TRACE(::testing::Message() << "rank " << rank << " " << suffix);
      set_random_seed(3);
      auto saved = every_layer_model(rank);
      saved->compile(Nadam(), "mse");
      const std::string path = dir + "every_layer_model" + suffix;
      saved->save(path);
      clear_session();
      auto loaded = load_model(path);
      EXPECT_EQ(loaded->to_json(), saved->to_json());
      const Array x = sample_input(rank);
      EXPECT_EQ(saved->predict(x, {.verbose = 0}).to_floats(), loaded->predict(x, {.verbose = 0}).to_floats());
      EXPECT_EQ(loaded->optimizer()->class_name(), "Nadam");
    }
  }
}

TEST(Saving, EveryLayerRoundTripsThroughBothLayouts) {
  const std::string dir = ::testing::TempDir();
  for (int rank : {2, 1, 0}) {
    for (const std::string suffix : {".weights.h5", ".h5"}) {
      SCOPED_TRACE(::testing::Message() << "rank " << rank << " " << suffix);
      set_random_seed(1);
      auto saved = every_layer_model(rank);
      const std::string path = dir + "every_layer" + suffix;
      saved->save_weights(path);
      set_random_seed(2);  // different initial weights
      auto loaded = every_layer_model(rank);
      loaded->load_weights(path);
      const auto a = saved->get_weights(), b = loaded->get_weights();
      ASSERT_EQ(a.size(), b.size());
      for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].to_floats(), b[i].to_floats()) << "weight " << i;
      const Array x = sample_input(rank);
      EXPECT_EQ(saved->predict(x, {.verbose = 0}).to_floats(), loaded->predict(x, {.verbose = 0}).to_floats());
    }
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

TEST(Saving, MismatchesNameTheLayerAndBothShapes) {
  clear_session();
  Sequential wider({Input({6}), Dense(6, {.activation = "relu"}), Dropout(0.2f), BatchNormalization(), Dense(3)}, "mlp");
  const std::string msg = error_of([&] { wider.load_weights(kFixtures + "mlp.h5"); });
  EXPECT_NE(msg.find("mlp.h5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer 'dense'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(6, 6)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(6, 5)"), std::string::npos) << msg;
  const std::string msg3 = error_of([&] { wider.load_weights(kFixtures + "mlp.weights.h5"); });
  EXPECT_NE(msg3.find("(6, 6)"), std::string::npos) << msg3;
  EXPECT_NE(msg3.find("(6, 5)"), std::string::npos) << msg3;

  clear_session();
  Sequential deeper({Input({6}), Dense(5), Dense(5), BatchNormalization(), Dense(3)});
  const std::string count = error_of([&] { deeper.load_weights(kFixtures + "mlp.h5"); });
  EXPECT_NE(count.find("the model has 4 layers with weights, the file 3"), std::string::npos) << count;

  // skip_mismatch loads what fits and leaves the rest: here the last Dense has 4 units, not 3.
  for (const std::string file : {"mlp.h5", "mlp.weights.h5"}) {
    SCOPED_TRACE(file);
    clear_session();
    Sequential partly({Input({6}), Dense(5, {.activation = "relu"}), Dropout(0.2f), BatchNormalization(), Dense(4)}, "mlp");
    const auto last_before = partly.get_layer(3)->weights()[0]->to_vector();
    ASSERT_EQ(error_of([&] { partly.load_weights(kFixtures + file, {.skip_mismatch = true}); }), "no error");
    EXPECT_EQ(partly.get_layer(3)->weights()[0]->to_vector(), last_before);
    auto reference = build("mlp");
    reference->load_weights(kFixtures + file);
    EXPECT_EQ(partly.get_layer(2)->weights()[2]->to_vector(), reference->get_layer(2)->weights()[2]->to_vector()) << "moving_mean loaded";
  }
}

TEST(Saving, Keras30BareWeightNamesLoad) {
  auto model = build("keras2_mlp");
  model->load_weights(kFixtures + "keras30_mlp.h5");
  expect_predicts(*model, load_sample("keras2_mlp"), "keras30_mlp.h5");
}

TEST(Saving, ByNameMatchesLayersByTheirNames) {
  // The Keras 2 file's layers, listed in the model in the other order, with a weightless layer between.
  clear_session();
  const Tensor x = Input({6});
  auto a = std::make_shared<Dense>(5, DenseOptions{.activation = "relu", .name = "dense_a"});
  auto b = std::make_shared<Dense>(3, DenseOptions{.activation = "softmax", .name = "dense_b"});
  const Tensor y = (*b)(Dropout(0.3f)((*a)(x)));
  Model model(x, y);
  model.load_weights(kFixtures + "keras2_mlp.h5", {.by_name = true});
  expect_predicts(model, load_sample("keras2_mlp"), "by_name");
}

TEST(Saving, BadFilesFailWithOneClearMessage) {
  const std::string dir = ::testing::TempDir();
  auto model = build("mlp");
  // Truncated: the first half of a real file.
  std::ifstream in(kFixtures + "mlp.h5", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir + "truncated.h5", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
  const std::string truncated = error_of([&] { model->load_weights(dir + "truncated.h5"); });
  EXPECT_NE(truncated.find("truncated.h5"), std::string::npos) << truncated;
  std::ofstream(dir + "text.h5") << "layer_names: dense\n";
  EXPECT_NE(error_of([&] { model->load_weights(dir + "text.h5"); }).find("not an HDF5 file"), std::string::npos);
  EXPECT_NE(error_of([&] { model->load_weights(dir + "missing.h5"); }).find("cannot open"), std::string::npos);
  EXPECT_NE(error_of([&] { model->save_weights(dir + "weights.keras"); }).find(".weights.h5"), std::string::npos);
}

TEST(Saving, AFailedSaveLeavesTheEarlierFile) {
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "kept.weights.h5";
  auto model = build("mlp");
  model->save_weights(path);
  const auto size = fs::file_size(path);
  {
    io::AtomicFile out(path);
    std::ofstream(out.temp_path()) << "half-written";
    // No commit: as if the process died or the writer threw here.
  }
  EXPECT_EQ(fs::file_size(path), size);
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().filename().string().find("kept.weights.h5.tmp"), std::string::npos) << "temporary left behind";
  // A save that cannot complete (the target is a directory) throws and leaves the directory as it was.
  fs::create_directories(dir + "occupied.h5/inside");
  EXPECT_NE(error_of([&] { model->save_weights(dir + "occupied.h5"); }), "no error");
  EXPECT_TRUE(fs::exists(dir + "occupied.h5/inside"));
}

// Runs `script` with `python` and returns its exit status; the script prints what a failure needs.
TEST(Saving, H5pyReadsWhatStrataWrites) {
  // Debian's Python first: python3-h5py installs there.
  const std::string python = python_has("/usr/bin/python3", "h5py") ? "/usr/bin/python3" : "python3";
  if (!python_has(python, "h5py")) GTEST_SKIP() << "python3 with h5py (Debian's python3-h5py) is not installed";
  auto model = build("mlp");
  const std::string dir = ::testing::TempDir();
  model->save_weights(dir + "h5py.weights.h5");
  model->save_weights(dir + "h5py.h5");
  const auto bias = model->get_layer(3)->weights()[1]->to_vector();
  const std::string script = fmt::format(R"(
import h5py, sys
with h5py.File("{0}h5py.weights.h5") as f:
    assert sorted(f["layers"].keys()) == ["batch_normalization", "dense", "dense_1", "dropout"], list(f["layers"].keys())
    assert f["layers/dense/vars/0"].shape == (6, 5)
    assert abs(float(f["layers/dense_1/vars/1"][0]) - {1}) < 1e-6
with h5py.File("{0}h5py.h5") as f:
    names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
    assert names == ["dense", "dropout", "batch_normalization", "dense_1"], names
    w = [n.decode() if isinstance(n, bytes) else n for n in f["dense_1"].attrs["weight_names"]]
    assert w == ["mlp/dense_1/kernel", "mlp/dense_1/bias"], w
    assert abs(float(f["dense_1"]["mlp/dense_1/bias"][0]) - {1}) < 1e-6
)", dir, bias[0]);
  EXPECT_EQ(run_python(python, script), 0);
}

// Datasets whose declared shape is not backed by data in the file (written by h5py without values, as a
// crafted file would declare them) are refused before anything is allocated for them.
TEST(Saving, DatasetsLargerThanTheirStoredDataAreRefused) {
  const std::string python = python_has("/usr/bin/python3", "h5py") ? "/usr/bin/python3" : "python3";
  if (!python_has(python, "h5py")) GTEST_SKIP() << "python3 with h5py (Debian's python3-h5py) is not installed";
  const std::string path = ::testing::TempDir() + "declared.h5";
  ASSERT_EQ(run_python(python, fmt::format(R"(
import h5py
with h5py.File("{0}", "w") as f:
    f.create_dataset("contiguous", shape=(100000, 1000), dtype="f4")
    f.create_dataset("chunked", shape=(100000, 1000), dtype="f4", chunks=(100, 1000), compression="gzip")
    f.create_dataset("small", data=[1.0, 2.0, 3.0])
)", path)), 0);
  const io::h5::File file = io::h5::File::open(path);
  EXPECT_EQ(file.read_floats("small").values, (std::vector<float>{1.f, 2.f, 3.f}));
  for (const char* name : {"contiguous", "chunked"}) {
    const std::string message = error_of([&] { file.read_floats(name); });
    EXPECT_NE(message.find(fmt::format("declared.h5: /{}: dataset declares 100000000 values (400000000 bytes) but the file stores 0 bytes", name)),
              std::string::npos) << message;
  }
}

TEST(Saving, KerasLoadsWhatStrataWrites) {
  const std::string python = keras_python();
  if (python.empty())
    GTEST_SKIP() << "Keras 3 is not installed (set STRATA_KERAS_PYTHON to a Python with Keras 3 and a backend): not checking that Keras loads Strata's files";
  set_random_seed(5);
  auto model = build("convnet");
  const std::string dir = ::testing::TempDir();
  model->save_weights(dir + "for_keras.weights.h5");
  model->save_weights(dir + "for_keras.h5");
  const Array x = Array::from_floats(test::random_vector(2 * 128, -1, 1, 9), {2, 8, 8, 2});
  const auto y = model->predict(x, {.verbose = 0}).to_floats();
  std::string xs, ys;
  for (float v : x.to_floats()) xs += fmt::format("{},", v);
  for (float v : y) ys += fmt::format("{},", v);
  const std::string script = fmt::format(R"(
import numpy as np, keras
from keras import layers
def convnet():
    return keras.Sequential([keras.Input((8, 8, 2)), layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(),
                             layers.Activation("relu"), layers.MaxPooling2D(2), layers.SeparableConv2D(3, 2),
                             layers.Flatten(), layers.Dense(2)], name="convnet")
x = np.array([{1}], dtype="float32").reshape(2, 8, 8, 2)
expected = np.array([{2}], dtype="float32").reshape(2, 2)
for path in ["{0}for_keras.weights.h5", "{0}for_keras.h5"]:
    m = convnet()
    m.load_weights(path)
    got = m.predict(x, verbose=0)
    assert np.allclose(got, expected, atol=1e-5), (path, got, expected)
)", dir, xs, ys);
  EXPECT_EQ(run_python(python, script), 0);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(SavingModels, KerasWholeModelFilesLoadCompiledAndPredict) {
  for (const std::string name : {"mlp", "convnet", "functional", "two_inputs", "recurrent"}) {
    SCOPED_TRACE(name);
    clear_session();
    auto model = load_model(kFixtures + name + ".h5");
    EXPECT_EQ(model->class_name(), name == "functional" || name == "two_inputs" ? "Functional" : "Sequential");
    expect_predicts(*model, load_sample(name), name);
    ASSERT_TRUE(model->compiled());
    EXPECT_EQ(model->optimizer()->class_name(), "Adam");
    // The restored loss (mse) is 0 on Keras's own predictions, and training continues from the loaded weights.
    const Sample s = load_sample(name);
    if (s.inputs.size() > 1) continue;  // train_on_batch takes one input array
    std::vector<float> keras_y(s.y.begin(), s.y.end());
    const Array y = Array::from_floats(keras_y, model->predict(s.x, {.verbose = 0}).shape());
    EXPECT_NEAR(model->test_on_batch(s.x, y).at("loss"), 0.0, 1e-9);
    const auto before = model->get_weights().back().to_floats();
    (void)model->train_on_batch(s.x, Array::from_floats(std::vector<float>(keras_y.size(), 1.f), y.shape()));
    EXPECT_NE(model->get_weights().back().to_floats(), before);
  }
}

TEST(SavingModels, StrataModelsRoundTripThroughH5) {
  const std::string dir = ::testing::TempDir();
  for (const std::string name : {"convnet", "functional", "two_inputs", "recurrent"}) {
    SCOPED_TRACE(name);
    set_random_seed(11);
    auto model = build(name);
    model->compile(Adam(AdamOptions{.learning_rate = 0.01}), "mse", {"mae"});
    model->save(dir + name + "_model.h5");
    clear_session();
    auto loaded = load_model(dir + name + "_model.h5");
    EXPECT_EQ(loaded->to_json(), model->to_json());
    const Sample s = load_sample(name);
    EXPECT_EQ(loaded->predict(s.inputs, {.verbose = 0})[0].to_floats(), model->predict(s.inputs, {.verbose = 0})[0].to_floats());
    ASSERT_TRUE(loaded->compiled());
    EXPECT_NEAR(loaded->optimizer()->get_config().at("learning_rate").get<double>(), 0.01, 1e-9);
  }
}

TEST(SavingModels, Keras2ConfigsBuildTheSameModel) {
  // Sequential with batch_input_shape on the first layer and the layer list inside a dict; Functional with
  // Keras 2's [[name, node, tensor, kwargs]] nodes and batch_input_shape on the InputLayer.
  const Json sequential = Json::parse(R"({"class_name": "Sequential", "config": {"name": "old", "layers": [
      {"class_name": "Dense", "config": {"name": "dense_a", "trainable": true, "batch_input_shape": [null, 6], "dtype": "float32",
        "units": 5, "activation": "relu", "use_bias": true,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}}, "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}},
      {"class_name": "Dense", "config": {"name": "dense_b", "trainable": true, "dtype": "float32", "units": 3, "activation": "softmax"}}]}})");
  const Json functional = Json::parse(R"({"class_name": "Model", "config": {"name": "old_functional", "layers": [
      {"name": "input_1", "class_name": "InputLayer", "config": {"batch_input_shape": [null, 6], "dtype": "float32", "sparse": false,
        "ragged": false, "name": "input_1"}, "inbound_nodes": []},
      {"name": "dense_a", "class_name": "Dense", "config": {"name": "dense_a", "units": 5, "activation": "relu"},
       "inbound_nodes": [[["input_1", 0, 0, {}]]]},
      {"name": "dense_b", "class_name": "Dense", "config": {"name": "dense_b", "units": 3, "activation": "softmax"},
       "inbound_nodes": [[["dense_a", 0, 0, {}]]]}],
      "input_layers": [["input_1", 0, 0]], "output_layers": [["dense_b", 0, 0]]}})");
  // Keras 2.0-2.2: the Sequential config is the bare list of layers.
  const Json bare_list = {{"class_name", "Sequential"}, {"config", sequential["config"]["layers"]}};
  for (const Json& config : {sequential, functional, bare_list}) {
    clear_session();
    auto model = model_from_json(config);
    model->load_weights(kFixtures + "keras2_mlp.h5");
    expect_predicts(*model, load_sample("keras2_mlp"), config["class_name"].get<std::string>());
  }
}

TEST(SavingModels, BadModelFilesSayWhatIsWrong) {
  // A weights-only file has no architecture.
  EXPECT_NE(error_of([] { (void)load_model(kFixtures + "keras2_mlp.h5"); }).find("no model_config"), std::string::npos);
  // An unknown layer in the config names it.
  const Json bad = Json::parse(R"({"class_name": "Sequential", "config": {"layers": [
      {"class_name": "InputLayer", "config": {"batch_shape": [null, 3]}}, {"class_name": "Dence", "config": {"units": 2}}]}})");
  const std::string msg = error_of([&] { (void)model_from_json(bad); });
  EXPECT_NE(msg.find("Dence"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Dense"), std::string::npos) << msg;
}

TEST(SavingModels, KerasLoadsStrataModelFiles) {
  const std::string python = keras_python();
  if (python.empty())
    GTEST_SKIP() << "Keras 3 is not installed (set STRATA_KERAS_PYTHON to a Python with Keras 3 and a backend): not checking that Keras loads Strata's files";
  const std::string dir = ::testing::TempDir();
  for (const std::string name : {"convnet", "functional", "recurrent"}) {
    SCOPED_TRACE(name);
    set_random_seed(12);
    auto model = build(name);
    model->compile("adam", "mse");
    model->save(dir + name + "_for_keras.h5");
    const Sample s = load_sample(name);
    std::string xs, ys;
    for (float v : s.x.to_floats()) xs += fmt::format("{},", v);
    for (float v : model->predict(s.x, {.verbose = 0}).to_floats()) ys += fmt::format("{},", v);
    const std::string script = fmt::format(R"(
import numpy as np, keras
m = keras.models.load_model("{0}")
x = np.array([{1}], dtype="float32").reshape({3})
expected = np.array([{2}], dtype="float32")
got = m.predict(x, verbose=0).ravel()
assert np.allclose(got, expected, atol=1e-5), (got, expected)
)", dir + name + "_for_keras.h5", xs, ys, fmt::format("{}", fmt::join(s.x.shape().to_vector(), ", ")));
    EXPECT_EQ(run_python(python, script), 0);
  }
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(KerasArchives, KerasFilesLoadCompiledAndPredict) {
  for (const std::string name : {"mlp", "convnet", "functional", "two_inputs", "recurrent"}) {
    SCOPED_TRACE(name);
    clear_session();
    auto model = load_model(kFixtures + name + ".keras");
    expect_predicts(*model, load_sample(name), name + ".keras");
    EXPECT_TRUE(model->compiled());
  }
}

TEST(KerasArchives, StrataModelsRoundTrip) {
  const std::string dir = ::testing::TempDir();
  for (const std::string name : {"convnet", "functional", "recurrent"}) {
    SCOPED_TRACE(name);
    set_random_seed(13);
    auto model = build(name);
    model->compile(Adam(AdamOptions{.learning_rate = 0.02}), "mse");
    model->save(dir + name + ".keras");
    clear_session();
    auto loaded = load_model(dir + name + ".keras");
    const Sample s = load_sample(name);
    EXPECT_EQ(loaded->predict(s.x, {.verbose = 0}).to_floats(), model->predict(s.x, {.verbose = 0}).to_floats());
    ASSERT_TRUE(loaded->compiled());
    EXPECT_EQ(loaded->optimizer()->class_name(), "Adam");
    EXPECT_NEAR(loaded->optimizer()->get_config().at("learning_rate").get<double>(), 0.02, 1e-9);
  }
}

// Rewrites a little-endian field of the first central-directory entry of a zip written by write_zip.
void patch_central(const std::string& path, std::size_t field_offset, std::uint32_t value, int bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::size_t central = all.find("PK\x01\x02");
  ASSERT_NE(central, std::string::npos);
  f.seekp(std::streamoff(central + field_offset));
  for (int i = 0; i < bytes; ++i) f.put(char((value >> (8 * i)) & 0xff));
}

TEST(KerasArchives, HostileArchivesAreRefused) {
  const std::string dir = ::testing::TempDir();
  auto model = build("mlp");
  io::write_zip(dir + "traversal.keras", {{"../../evil.json", "{}"}, {"config.json", "{}"}});
  EXPECT_NE(error_of([&] { (void)load_model(dir + "traversal.keras"); }).find("outside the directory"), std::string::npos);
  io::write_zip(dir + "absolute.keras", {{"/etc/passwd", "x"}});
  EXPECT_NE(error_of([&] { (void)load_model(dir + "absolute.keras"); }).find("outside the directory"), std::string::npos);
  // A deflated member that claims 3 GB from 10 bytes.
  io::write_zip(dir + "bomb.keras", {{"config.json", "0123456789"}});
  patch_central(dir + "bomb.keras", 10, 8, 2);            // method: deflate
  patch_central(dir + "bomb.keras", 24, 3000000000u, 4);  // uncompressed size
  EXPECT_NE(error_of([&] { (void)load_model(dir + "bomb.keras"); }).find("zip bomb"), std::string::npos);
  io::write_zip(dir + "crc.keras", {{"config.json", "{}"}});
  patch_central(dir + "crc.keras", 16, 12345, 4);
  EXPECT_NE(error_of([&] { (void)load_model(dir + "crc.keras"); }).find("CRC mismatch"), std::string::npos);
  // Truncated: the first half of a real archive.
  model->save(dir + "whole.keras");
  std::ifstream in(dir + "whole.keras", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir + "half.keras", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
  const std::string half = error_of([&] { (void)load_model(dir + "half.keras"); });
  EXPECT_NE(half.find("half.keras"), std::string::npos) << half;
  EXPECT_NE(half.find("not a zip archive"), std::string::npos) << half;
}

TEST(KerasArchives, KerasLoadsStrataArchives) {
  const std::string python = keras_python();
  if (python.empty())
    GTEST_SKIP() << "Keras 3 is not installed (set STRATA_KERAS_PYTHON to a Python with Keras 3 and a backend): not checking that Keras loads Strata's files";
  const std::string dir = ::testing::TempDir();
  set_random_seed(14);
  auto model = build("functional");
  model->compile("adam", "mse");
  const Sample s = load_sample("functional");
  (void)model->train_on_batch(s.x, Array::from_floats(std::vector<float>(4, 0.5f), {2, 2}));  // the optimizer state is saved too
  model->save(dir + "for_keras.keras");
  std::string xs, ys;
  for (float v : s.x.to_floats()) xs += fmt::format("{},", v);
  for (float v : model->predict(s.x, {.verbose = 0}).to_floats()) ys += fmt::format("{},", v);
  const std::string script = fmt::format(R"(
import numpy as np, keras
m = keras.models.load_model("{0}")
got = m.predict(np.array([{1}], dtype="float32").reshape(2, 7), verbose=0).ravel()
assert np.allclose(got, np.array([{2}], dtype="float32"), atol=1e-5), got
assert type(m.optimizer).__name__ == "Adam", type(m.optimizer)
assert int(m.optimizer.iterations) == 1, m.optimizer.iterations
)", dir + "for_keras.keras", xs, ys);
  EXPECT_EQ(run_python(python, script), 0);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(OptimizerState, TrainingResumesExactlyFromEveryFormat) {
  const std::string dir = ::testing::TempDir();
  const Sample s = load_sample("convnet");
  const Array targets = Array::from_floats(test::random_vector(std::size_t(s.x.rows() * 2), -1, 1, 21), {s.x.rows(), 2});
  // With use_ema the state holds the moving averages too, which the later steps read and overwrite from.
  const AdamOptions plain{.learning_rate = 0.01};
  const AdamOptions averaging{.learning_rate = 0.01, .use_ema = true, .ema_momentum = 0.5f, .ema_overwrite_frequency = 4};
  for (const auto& [suffix, options] : {std::pair{".keras", plain}, std::pair{".h5", plain}, std::pair{".weights.h5", plain},
                                        std::pair{".keras", averaging}, std::pair{".h5", averaging},
                                        std::pair{".weights.h5", averaging}}) {
    SCOPED_TRACE(std::string(suffix) + (options.use_ema ? " use_ema" : ""));
    set_random_seed(15);
    auto original = build("convnet");
    original->compile(Adam(options), "mse");
    for (int i = 0; i < 3; ++i) (void)original->train_on_batch(s.x, targets);
    const std::string path = dir + "resume" + suffix;
    if (suffix == std::string(".weights.h5")) original->save_weights(path);
    else original->save(path);
    std::unique_ptr<Model> resumed;
    if (suffix == std::string(".weights.h5")) {
      resumed = build("convnet");
      resumed->compile(Adam(options), "mse");
      resumed->load_weights(path);
    } else {
      resumed = load_model(path);
    }
    EXPECT_EQ(resumed->optimizer()->iterations(), 3);
    EXPECT_EQ(resumed->optimizer()->moving_average().use_ema, options.use_ema);
    for (int i = 0; i < 2; ++i) {
      (void)original->train_on_batch(s.x, targets);
      (void)resumed->train_on_batch(s.x, targets);
    }
    const auto a = original->get_weights(), b = resumed->get_weights();
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].to_floats(), b[i].to_floats()) << "weight " << i;
  }
}

TEST(OptimizerState, AStateThatDoesNotFitSaysSo) {
  const std::string dir = ::testing::TempDir();
  const Sample s = load_sample("convnet");
  const Array targets = Array::from_floats(std::vector<float>(std::size_t(s.x.rows() * 2), 0.5f), {s.x.rows(), 2});
  auto model = build("convnet");
  model->compile(Adam(), "mse");
  (void)model->train_on_batch(s.x, targets);
  model->save_weights(dir + "adam.weights.h5");
  auto other = build("convnet");
  other->compile(RMSprop(RMSpropOptions{.momentum = 0.9f}), "mse");  // two slots per weight, in another order
  const std::string msg = error_of([&] { other->load_weights(dir + "adam.weights.h5"); });
  EXPECT_NE(msg.find("optimizer/vars"), std::string::npos) << msg;
  EXPECT_NE(msg.find("optimizer state"), std::string::npos) << msg;
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(ModelCheckpointTest, FormatsPathsAsPythonDoes) {
  const Logs logs{{"loss", 0.5}, {"val_loss", 0.12345}, {"val_accuracy", 0.875}};
  EXPECT_EQ(format_checkpoint_path("ckpt-{epoch:02d}-{val_loss:.2f}.keras", 2, std::nullopt, logs), "ckpt-03-0.12.keras");
  EXPECT_EQ(format_checkpoint_path("m{epoch}_{val_accuracy:.3f}_{{x}}.h5", 0, std::nullopt, logs), "m1_0.875_{x}.h5");
  EXPECT_EQ(format_checkpoint_path("b{batch:03d}.keras", 0, 41, logs), "b042.keras");
  const std::string missing = error_of([&] { (void)format_checkpoint_path("{val_acc:.2f}.keras", 0, std::nullopt, logs); });
  EXPECT_NE(missing.find("no value named 'val_acc'"), std::string::npos) << missing;
  EXPECT_NE(missing.find("val_accuracy"), std::string::npos) << missing;
  EXPECT_NE(error_of([&] { (void)format_checkpoint_path("{loss:d}.keras", 0, std::nullopt, logs); }).find("cannot format 'loss'"), std::string::npos);
  EXPECT_NE(error_of([] { ModelCheckpoint("w.h5", {.save_weights_only = true}); }).find(".weights.h5"), std::string::npos);
  EXPECT_NE(error_of([] { ModelCheckpoint("m.ckpt"); }).find(".keras or .h5"), std::string::npos);
  EXPECT_TRUE(larger_is_better("val_accuracy"));
  EXPECT_FALSE(larger_is_better("val_loss"));
}

TEST(ModelCheckpointTest, SavesEveryEpochOrTheBest) {
  const std::string dir = ::testing::TempDir() + "checkpoints/";
  std::filesystem::create_directories(dir);
  set_random_seed(16);
  auto model = build("mlp");
  model->compile(SGD(SGDOptions{.learning_rate = 0.5}), "sparse_categorical_crossentropy", {"accuracy"});
  const Array x = Array::from_floats(test::random_vector(64 * 6, -1, 1, 17), {64, 6});
  std::vector<std::int32_t> labels(64);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t(i % 3);
  const Array y = Array::from_ints(labels, {64});
  // The weights and loss at the end of each epoch, to find the best one.
  auto record = std::make_shared<LambdaCallback>();
  std::vector<std::vector<Array>> weights;
  std::vector<double> losses;
  record->on_epoch_end_fn = [&](int, const Logs& logs) {
    weights.push_back(model->get_weights());
    losses.push_back(logs.at("loss"));
  };
  auto every = std::make_shared<ModelCheckpoint>(dir + "every-{epoch:02d}.keras");
  auto best = std::make_shared<ModelCheckpoint>(dir + "best.weights.h5",
                                                ModelCheckpointOptions{.monitor = "loss", .save_best_only = true, .save_weights_only = true});
  model->fit(x, y, {.epochs = 4, .batch_size = 16, .verbose = 0, .callbacks = {record, every, best}});
  for (int e = 1; e <= 4; ++e) {
    const std::string path = fmt::format("{}every-{:02d}.keras", dir, e);
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
    auto loaded = load_model(path);
    const auto w = loaded->get_weights();
    for (std::size_t i = 0; i < w.size(); ++i) EXPECT_EQ(w[i].to_floats(), weights[std::size_t(e - 1)][i].to_floats()) << path;
  }
  const std::size_t best_epoch = std::size_t(std::min_element(losses.begin(), losses.end()) - losses.begin());
  auto from_best = build("mlp");
  from_best->load_weights(dir + "best.weights.h5");
  EXPECT_EQ(from_best->get_weights()[0].to_floats(), weights[best_epoch][0].to_floats());
  EXPECT_DOUBLE_EQ(*best->best(), losses[best_epoch]);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

TEST(BackupAndRestoreTest, AnInterruptedFitResumesToTheSameWeights) {
  // Dropout, shuffling and validation: everything that draws random numbers or counts steps.
  const std::string dir = ::testing::TempDir() + "backup";
  std::filesystem::remove_all(dir);
  const Array x = Array::from_floats(test::random_vector(96 * 6, -1, 1, 18), {96, 6});
  std::vector<std::int32_t> labels(96);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = std::int32_t((i * 7) % 3);
  const Array y = Array::from_ints(labels, {96});
  auto train = [&](std::vector<CallbackPtr> callbacks) {
    set_random_seed(19);
    auto model = build("mlp");
    model->compile(Adam(AdamOptions{.learning_rate = 0.01}), "sparse_categorical_crossentropy", {"accuracy"});
    std::vector<Array> weights;
    try {
      model->fit(x, y, {.epochs = 5, .batch_size = 16, .verbose = 0, .callbacks = callbacks, .validation_split = 0.25});
      weights = model->get_weights();
    } catch (const Interrupted&) {
    }
    return weights;
  };
  const auto uninterrupted = train({});
  auto stop_after_3 = std::make_shared<LambdaCallback>();
  stop_after_3->on_epoch_end_fn = [](int epoch, const Logs&) {
    if (epoch == 2) throw Interrupted();
  };
  auto backup = std::make_shared<BackupAndRestore>(dir);
  EXPECT_TRUE(train({backup, stop_after_3}).empty());
  ASSERT_TRUE(std::filesystem::exists(backup->checkpoint_path())) << "the checkpoint of epoch 3 is there";
  int first_epoch = -1;
  auto watch = std::make_shared<LambdaCallback>();
  watch->on_epoch_begin_fn = [&](int epoch, const Logs&) {
    if (first_epoch < 0) first_epoch = epoch;
  };
  const auto resumed = train({backup, watch});
  EXPECT_EQ(first_epoch, 3);
  ASSERT_EQ(resumed.size(), uninterrupted.size());
  for (std::size_t i = 0; i < resumed.size(); ++i) EXPECT_EQ(resumed[i].to_floats(), uninterrupted[i].to_floats()) << "weight " << i;
  EXPECT_FALSE(std::filesystem::exists(backup->checkpoint_path())) << "removed after a normal end";
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

TEST(KerasArchives, KerasLoadsStrataMergeModels) {
  const std::string python = keras_python();
  if (python.empty())
    GTEST_SKIP() << "Keras 3 is not installed (set STRATA_KERAS_PYTHON to a Python with Keras 3 and a backend): not checking that Keras loads Strata's files";
  const std::string dir = ::testing::TempDir();
  set_random_seed(20);
  auto model = build("two_inputs");
  model->compile("adam", "mse");
  const Sample s = load_sample("two_inputs");
  std::string inputs, ys;
  for (const Array& a : s.inputs) {
    std::string values;
    for (float v : a.to_floats()) values += fmt::format("{},", v);
    inputs += fmt::format("np.array([{}], dtype='float32').reshape({}),", values, fmt::join(a.shape().to_vector(), ", "));
  }
  for (float v : model->predict(s.inputs, {.verbose = 0})[0].to_floats()) ys += fmt::format("{},", v);
  for (const std::string suffix : {".keras", ".h5"}) {
    SCOPED_TRACE(suffix);
    model->save(dir + "merge" + suffix);
    const std::string script = fmt::format(R"(
import numpy as np, keras
m = keras.models.load_model("{0}", compile=False)
got = m.predict([{1}], verbose=0).ravel()
assert np.allclose(got, np.array([{2}], dtype="float32"), atol=1e-5), got
)", dir + "merge" + suffix, inputs, ys);
    EXPECT_EQ(run_python(python, script), 0);
  }
}

}  // namespace
}  // namespace strata
