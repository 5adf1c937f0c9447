// Sequential and functional models end to end: summary, fit, evaluate, predict, weights, callbacks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "api/strata.h"
#include "test_util.h"

namespace strata {
namespace {

// Two Gaussian blobs per class in 4-D, well apart: a network separates them completely.
struct Blobs {
  Array x, y;
  explicit Blobs(int n = 256, int classes = 3, std::uint32_t seed = 41) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.f, 0.3f);
    std::vector<float> xs;
    std::vector<std::int32_t> ys;
    for (int i = 0; i < n; ++i) {
      const int c = i % classes;
      ys.push_back(c);
      for (int f = 0; f < 4; ++f) xs.push_back((f == c ? 3.f : 0.f) + noise(rng));
    }
    x = Array::from_floats(xs, {n, 4});
    y = Array::from_ints(ys, {n});
  }
};

Sequential small_mlp(int classes = 3) {
  return Sequential({Input({4}), Dense(16, {.activation = "relu"}), Dense(classes, {.activation = "softmax"})});
}

TEST(Model, SummaryMatchesKerasTable) {
  clear_session();
  unsetenv("COLUMNS");
  Sequential model({Input({28, 28}), Flatten(), Dense(256, {.activation = "relu"}), Dense(128, {.activation = "relu"}),
                    Dense(10, {.activation = "softmax"})});
  // Printed by Keras 3 for the same model (80-column output).
  const std::string keras = R"(Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ flatten (Flatten)               │ (None, 784)            │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 256)            │       200,960 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 128)            │        32,896 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_2 (Dense)                 │ (None, 10)             │         1,290 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 235,146 (918.54 KB)
 Trainable params: 235,146 (918.54 KB)
 Non-trainable params: 0 (0.00 B)
)";
  EXPECT_EQ(model.summary_string(), keras);
}

TEST(Model, FunctionalSummaryOfAChainMatchesKeras) {
  clear_session();
  const Tensor in = Input({4});
  const Tensor out = Dense(3)(in);
  Model model(in, out);
  // Printed by Keras 3: a chain is shown like a Sequential, with its InputLayer.
  const std::string keras = R"(Model: "functional"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ input_layer (InputLayer)        │ (None, 4)              │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 3)              │            15 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 15 (60.00 B)
 Trainable params: 15 (60.00 B)
 Non-trainable params: 0 (0.00 B)
)";
  EXPECT_EQ(model.summary_string(), keras);
}

TEST(Model, SummaryCountsOptimizerStateAsKeras) {
  clear_session();
  Blobs data(8);
  Sequential model({Input({4}), Dense(3, {.activation = "softmax"})});
  model.compile("nadam", "sparse_categorical_crossentropy", {"acc"});
  const History h = model.fit(data.x, data.y, {.verbose = 0});
  EXPECT_TRUE(h.history.count("acc"));
  // Keras 3 prints these totals for the same model after fitting with Nadam.
  const std::string s = model.summary_string();
  EXPECT_NE(s.find(" Total params: 48 (192.00 B)\n Trainable params: 15 (60.00 B)\n Non-trainable params: 0 (0.00 B)\n"
                   " Optimizer params: 33 (132.00 B)\n"), std::string::npos) << s;
}

TEST(Model, FunctionalSummaryWithBranchesHasConnections) {
  clear_session();
  const Tensor in = Input({4});
  auto shared = std::make_shared<Dense>(4);
  const Tensor a = (*shared)(in);
  const Tensor out = (*shared)(a);
  Model model(in, out);
  const std::string s = model.summary_string(120);
  EXPECT_NE(s.find("Connected to"), std::string::npos) << s;
  // The shared layer's second call reads its own first output: Keras writes dense[0][0] for it.
  EXPECT_NE(s.find("input_layer[0][0],"), std::string::npos) << s;
  EXPECT_NE(s.find("dense[0][0]"), std::string::npos) << s;
  EXPECT_EQ(model.layers().size(), 2u);
  EXPECT_EQ(model.count_params(), 20);
}

TEST(Model, FitSeparatesBlobsCompletely) {
  clear_session();
  set_random_seed(1);
  Blobs data;
  Sequential model = small_mlp();
  model.compile(Adam(AdamOptions{.learning_rate = 0.01}), "sparse_categorical_crossentropy", {"accuracy"});
  const History h = model.fit(data.x, data.y, {.epochs = 30, .batch_size = 32, .verbose = 0});
  EXPECT_EQ(h.history.at("accuracy").size(), 30u);
  EXPECT_LT(h.history.at("loss").back(), h.history.at("loss").front());
  EXPECT_EQ(model.evaluate(data.x, data.y, {.verbose = 0}).at("accuracy"), 1.0);
}

std::vector<float> flat_weights(const Model& m) {
  std::vector<float> out;
  for (const auto& w : m.weights())
    for (float v : w->to_vector()) out.push_back(v);
  return out;
}

TEST(Model, SameSeedSameWeightsBitForBit) {
  Blobs data;
  auto train = [&] {
    clear_session();
    set_random_seed(7);
    Sequential model({Input({4}), Dense(16, {.activation = "relu"}), Dropout(0.3f), Dense(3, {.activation = "softmax"})});
    model.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
    model.fit(data.x, data.y, {.epochs = 2, .batch_size = 16, .verbose = 0, .validation_split = 0.2});
    return flat_weights(model);
  };
  const auto a = train(), b = train();
  EXPECT_EQ(a, b);
  clear_session();
  set_random_seed(8);
  Sequential other = small_mlp();
  EXPECT_NE(flat_weights(other).size(), 0u);
}

TEST(Model, FunctionalAndSequentialAgree) {
  clear_session();
  Sequential seq({Input({4}), Dense(8, {.activation = "tanh"}), Dense(2)});
  const Tensor in = Input({4});
  Tensor h = Dense(8, {.activation = "tanh"})(in);
  const Tensor out = Dense(2)(h);
  Model fun(in, out);
  ASSERT_EQ(fun.layers().size(), 3u);  // InputLayer, two Dense
  fun.set_weights(seq.get_weights());
  Blobs data(10);
  const Array a = seq.predict(data.x, {.verbose = 0}), b = fun.predict(data.x, {.verbose = 0});
  EXPECT_EQ(a.shape(), (Shape{10, 2}));
  const auto av = a.to_floats(), bv = b.to_floats();
  ASSERT_EQ(av.size(), bv.size());
  for (std::size_t i = 0; i < av.size(); ++i) EXPECT_FLOAT_EQ(av[i], bv[i]);
  // And both match the formula with the weights read back.
  const auto w = seq.get_weights();
  const auto k1 = w[0].to_floats(), b1 = w[1].to_floats(), k2 = w[2].to_floats(), b2 = w[3].to_floats();
  const auto xv = data.x.to_floats();
  for (int r = 0; r < 10; ++r)
    for (int o = 0; o < 2; ++o) {
      double acc = b2[std::size_t(o)];
      for (int j = 0; j < 8; ++j) {
        double hj = b1[std::size_t(j)];
        for (int i = 0; i < 4; ++i) hj += double(xv[std::size_t(r * 4 + i)]) * k1[std::size_t(i * 8 + j)];
        acc += std::tanh(hj) * k2[std::size_t(j * 2 + o)];
      }
      EXPECT_NEAR(av[std::size_t(r * 2 + o)], acc, 1e-5);
    }
}

TEST(Model, ValidationSplitIsTheLastFractionBeforeShuffling) {
  clear_session();
  set_random_seed(3);
  Blobs data(200);
  Sequential model = small_mlp();
  model.compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
  const History h = model.fit(data.x, data.y, {.epochs = 2, .batch_size = 16, .verbose = 0, .validation_split = 0.25});
  const Logs last = model.evaluate(data.x.slice_rows(150, 50), data.y.slice_rows(150, 50), {.batch_size = 16, .verbose = 0});
  EXPECT_DOUBLE_EQ(h.history.at("val_loss").back(), last.at("loss"));
  EXPECT_DOUBLE_EQ(h.history.at("val_accuracy").back(), last.at("accuracy"));
  // Class weights weigh the training loss only.
  const History h3 = model.fit(data.x, data.y, {.epochs = 1, .batch_size = 16, .verbose = 0, .validation_split = 0.25,
                                                .class_weight = {{0, 2.f}, {1, 2.f}, {2, 2.f}}});
  const Logs unweighted = model.evaluate(data.x.slice_rows(150, 50), data.y.slice_rows(150, 50), {.batch_size = 16, .verbose = 0});
  EXPECT_DOUBLE_EQ(h3.history.at("val_loss").back(), unweighted.at("loss"));
  // validation_data gives the same numbers for the same rows.
  const History h2 = model.fit(data.x.slice_rows(0, 150), data.y.slice_rows(0, 150),
                               {.epochs = 1, .verbose = 0, .validation_data = ValidationData{{data.x.slice_rows(150, 50)}, {data.y.slice_rows(150, 50)}}});
  const Logs after = model.evaluate(data.x.slice_rows(150, 50), data.y.slice_rows(150, 50), {.verbose = 0});
  EXPECT_DOUBLE_EQ(h2.history.at("val_loss").back(), after.at("loss"));
}

TEST(Model, ClassAndSampleWeightsScaleTheLoss) {
  Blobs data(64);
  auto first_epoch_loss = [&](std::map<int, float> class_weight, Array sample_weight) {
    clear_session();
    set_random_seed(5);
    Sequential model = small_mlp();
    model.compile(SGD(SGDOptions{.learning_rate = 0.0}), "sparse_categorical_crossentropy");
    return model.fit(data.x, data.y, {.epochs = 1, .verbose = 0, .shuffle = false, .class_weight = class_weight, .sample_weight = sample_weight})
        .history.at("loss")[0];
  };
  const double plain = first_epoch_loss({}, {});
  EXPECT_NEAR(first_epoch_loss({{0, 2.f}, {1, 2.f}, {2, 2.f}}, {}), 2 * plain, 1e-5);
  EXPECT_NEAR(first_epoch_loss({}, Array::from_floats(std::vector<float>(64, 0.5f), {64})), 0.5 * plain, 1e-5);
  EXPECT_THROW(first_epoch_loss({{0, 1.f}}, {}), std::invalid_argument);  // classes 1 and 2 have no weight
}

// Two outputs with their own losses, weights and metrics, written out from the predictions.
TEST(Model, PerOutputLossesWeightsAndMetrics) {
  clear_session();
  set_random_seed(8);
  Blobs data(32);
  const Tensor x = Input({4});
  const Tensor h = Dense(6, {.activation = "tanh"})(x);
  const Tensor cls = Dense(3, {.activation = "softmax", .name = "cls"})(h);
  const Tensor reg = Dense(1, {.name = "reg"})(h);
  Model model(x, {cls, reg});
  EXPECT_EQ(model.output_names(), (std::vector<std::string>{"cls", "reg"}));
  model.compile({.optimizer = "sgd",
                 .output_losses = {{"cls", "sparse_categorical_crossentropy"}, {"reg", "mse"}},
                 .loss_weights = {{"reg", 0.25f}},
                 .output_metrics = {{"cls", {"accuracy"}}, {"reg", {"mae"}}}});
  const Array target = Array::from_floats(test::random_vector(32, -1, 1, 3), {32, 1});
  const Logs logs = model.evaluate({data.x}, {data.y, target}, {.batch_size = 8, .verbose = 0});
  const auto pred = model.predict(std::vector<Array>{data.x}, {.verbose = 0});
  const auto p = pred[0].to_floats(), r = pred[1].to_floats(), t = target.to_floats();
  const auto labels = data.y.to_floats();
  double ce = 0, se = 0, ae = 0, correct = 0;
  for (int i = 0; i < 32; ++i) {
    const int label = int(labels[std::size_t(i)]);
    ce -= std::log(double(p[std::size_t(i * 3 + label)]));
    const auto row = p.begin() + i * 3;
    correct += (std::max_element(row, row + 3) - row) == label;
    se += std::pow(double(r[std::size_t(i)] - t[std::size_t(i)]), 2);
    ae += std::fabs(double(r[std::size_t(i)] - t[std::size_t(i)]));
  }
  EXPECT_NEAR(logs.at("cls_loss"), ce / 32, 1e-5);
  EXPECT_NEAR(logs.at("reg_loss"), se / 32, 1e-5);
  EXPECT_NEAR(logs.at("loss"), ce / 32 + 0.25 * se / 32, 1e-5);
  EXPECT_NEAR(logs.at("cls_accuracy"), correct / 32, 1e-6);
  EXPECT_NEAR(logs.at("reg_mae"), ae / 32, 1e-5);
  EXPECT_EQ(logs.size(), 5u);
  // The compile config goes into saved files in Keras's dict form and comes back.
  const std::string path = ::testing::TempDir() + "two_outputs.keras";
  model.save(path);
  auto loaded = load_model(path);
  const Logs again = loaded->evaluate({data.x}, {data.y, target}, {.batch_size = 8, .verbose = 0});
  for (const auto& [key, value] : logs) EXPECT_NEAR(again.at(key), value, 1e-6) << key;

  Model unnamed(x, {cls, reg});
  unnamed.compile({.optimizer = "sgd", .loss = "mse", .loss_weights = {{"cls_head", 1.f}}});
  try {
    unnamed.evaluate({data.x}, {data.y, target}, {.verbose = 0});
    ADD_FAILURE() << "no error for an unknown output name";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("loss_weights names 'cls_head', which is not an output of model"), std::string::npos) << e.what();
  }
}

// A sequence output with a mask: the loss and mean metrics average over the unmasked steps only, as Keras's.
TEST(Model, LossIgnoresMaskedSteps) {
  clear_session();
  set_random_seed(9);
  const Tensor tokens = Input({4});
  const Tensor y = TimeDistributed(Dense(1))(Embedding(6, 3, {.mask_zero = true})(tokens));
  Model model(tokens, y);
  model.compile("sgd", "mse", {"mae"});
  const Array ids = Array::from_floats({1, 2, 0, 0, 3, 4, 5, 1, 0, 0, 0, 0}, {3, 4});
  const Array target = Array::from_floats(test::random_vector(12, -1, 1, 4), {3, 4, 1});
  const auto pred = model.predict(ids, {.verbose = 0}).to_floats();
  const auto t = target.to_floats(), id = ids.to_floats();
  double sum = 0, absolute = 0, valid = 0;
  for (std::size_t i = 0; i < 12; ++i)
    if (id[i] != 0) sum += std::pow(double(pred[i] - t[i]), 2), absolute += std::fabs(double(pred[i] - t[i])), valid += 1;
  const Logs logs = model.evaluate(ids, target, {.verbose = 0});
  EXPECT_NEAR(logs.at("loss"), sum / valid, 1e-6);
  EXPECT_NEAR(logs.at("mae"), absolute / valid, 1e-6);  // metrics weight the steps by the mask too
}

TEST(Model, EarlyStoppingTerminateOnNaNAndCSVLogger) {
  Blobs data(64);
  clear_session();
  set_random_seed(6);
  {
    // A learning rate of zero and no shuffling keep the loss exactly flat: no improvement after the first
    // epoch, so patience 2 stops after epoch 3, and the best weights are the (unchanged) first ones.
    Sequential model = small_mlp();
    model.compile(SGD(SGDOptions{.learning_rate = 0.0}), "sparse_categorical_crossentropy");
    auto stop = std::make_shared<EarlyStopping>(EarlyStoppingOptions{.monitor = "loss", .patience = 2, .restore_best_weights = true});
    const std::string csv = ::testing::TempDir() + "log.csv";
    auto logger = std::make_shared<CSVLogger>(csv);
    const History h = model.fit(data.x, data.y, {.epochs = 10, .verbose = 0, .callbacks = {stop, logger}, .shuffle = false});
    EXPECT_EQ(h.history.at("loss").size(), 3u);
    EXPECT_EQ(stop->stopped_epoch(), 2);
    std::ifstream in(csv);
    std::string header, row;
    std::getline(in, header);
    EXPECT_EQ(header, "epoch,loss");
    int rows = 0;
    while (std::getline(in, row)) ++rows;
    EXPECT_EQ(rows, 3);
  }
  {
    // A diverging learning rate: the loss overflows and training stops at that batch.
    Sequential model = small_mlp();
    model.compile(SGD(SGDOptions{.learning_rate = 1e30}), "mse");
    const Array target = Array::from_floats(std::vector<float>(64 * 3, 1e10f), {64, 3});
    const History h = model.fit(data.x, target, {.epochs = 5, .batch_size = 4, .verbose = 0, .callbacks = {std::make_shared<TerminateOnNaN>()}});
    EXPECT_EQ(h.history.at("loss").size(), 1u);
    EXPECT_FALSE(std::isfinite(h.history.at("loss")[0]));
  }
}

// check_numerics names the first layer whose output is not finite, forward or backward, and the
// optimizer update that overflows; without it the same runs go on quietly.
TEST(Model, CheckNumericsNamesTheFirstLayerThatWentNonFinite) {
  struct Reset {
    ~Reset() { enable_check_numerics(false); }
  } reset;
  Blobs data(16);
  clear_session();
  set_random_seed(3);
  Sequential model({Input({4}), Dense(8, {.activation = "relu", .name = "hidden"}), Dense(3, {.name = "boom"}),
                    Activation("softmax", {.name = "probabilities"})});
  model.compile(SGD(), "sparse_categorical_crossentropy");
  std::vector<Array> w = model.get_weights();
  w[1] = Array::from_floats(std::vector<float>(8, 10.f), {8});           // hidden's bias: outputs well above 1
  w[2] = Array::from_floats(std::vector<float>(8 * 3, 3e37f), {8, 3});  // boom's kernel: its outputs overflow
  model.set_weights(w);
  EXPECT_NO_THROW(model.predict(data.x, {.verbose = 0}));
  enable_check_numerics();
  try {
    model.predict(data.x, {.verbose = 0});
    ADD_FAILURE() << "no NonFiniteError";
  } catch (const NonFiniteError& e) {
    EXPECT_NE(std::string(e.what()).find("'boom' (matmul, forward pass) produced inf"), std::string::npos) << e.what();
  }

  // The data itself.
  std::vector<float> xs = data.x.to_floats();
  xs[5] = std::nanf("");
  try {
    model.predict(Array::from_floats(xs, data.x.shape()), {.verbose = 0});
    ADD_FAILURE() << "no NonFiniteError";
  } catch (const NonFiniteError& e) {
    EXPECT_NE(std::string(e.what()).find("input 'input_layer' holds NaN (element 5"), std::string::npos) << e.what();
  }

  // Finite forward pass, overflowing update.
  Sequential fresh({Input({4}), Dense(3)});
  fresh.compile(SGD(SGDOptions{.learning_rate = 1e38}), "mse");
  const Array target = Array::from_floats(std::vector<float>(16 * 3, 1e3f), {16, 3});
  try {
    fresh.fit(data.x, target, {.epochs = 1, .batch_size = 16, .verbose = 0});
    ADD_FAILURE() << "no NonFiniteError";
  } catch (const NonFiniteError& e) {
    EXPECT_NE(std::string(e.what()).find("the SGD update of variable"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("in run 1;"), std::string::npos) << e.what();
  }
}

// A batch or a model too large for the memory fails before training starts, saying how much it needs.
TEST(Model, PlansLargerThanTheMemoryFailBeforeTraining) {
  struct Unset {
    ~Unset() { ::unsetenv("STRATA_MEMORY_LIMIT_MB"); }
  } unset;
  clear_session();
  try {
    Sequential huge({Input({1000000}), Dense(1000000, {.name = "wide"})});
    ADD_FAILURE() << "a 4 TB kernel was allocated";
  } catch (const OutOfMemoryError& e) {
    EXPECT_NE(std::string(e.what()).find("layer 'wide' (Dense): variable 'wide/kernel' of shape (1000000, 1000000) needs 3.6 TiB"), std::string::npos) << e.what();
  }

  ::setenv("STRATA_MEMORY_LIMIT_MB", "16", 1);
  Sequential model({Input({256}), Dense(1024, {.activation = "relu"}), Dense(1)});
  model.compile("adam", "mse");
  const Array x = Array::from_floats(std::vector<float>(4096 * 256, 0.5f), {4096, 256});
  const Array y = Array::from_floats(std::vector<float>(4096, 1.f), {4096, 1});
  struct Count : Callback {
    int begun = 0;
    void on_train_begin(const Logs&) override { ++begun; }
  };
  auto count = std::make_shared<Count>();
  try {
    model.fit(x, y, {.epochs = 1, .batch_size = 4096, .verbose = 0, .callbacks = {count}});
    ADD_FAILURE() << "no OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("the training plan for inputs of shape (4096, 256)"), std::string::npos) << m;
    EXPECT_NE(m.find("STRATA_MEMORY_LIMIT_MB=16"), std::string::npos) << m;
    EXPECT_NE(m.find("a smaller batch size needs less"), std::string::npos) << m;
  }
  EXPECT_EQ(count->begun, 0);
  // The same model trains in batches that fit.
  EXPECT_NO_THROW(model.fit(x, y, {.epochs = 1, .batch_size = 256, .verbose = 0}));
}

TEST(Model, ShuffleSeedFixesTheOrderAlone) {
  Blobs data(64);
  auto train = [&](std::uint64_t global_seed, std::optional<std::uint64_t> shuffle_seed) {
    clear_session();
    set_random_seed(3);
    Sequential model = small_mlp();
    model.compile(SGD(SGDOptions{.learning_rate = 0.1}), "sparse_categorical_crossentropy");
    (void)model.get_weights();
    set_random_seed(global_seed);  // only the shuffling draws from it from here on
    model.fit(data.x, data.y, {.epochs = 2, .batch_size = 8, .verbose = 0, .shuffle_seed = shuffle_seed});
    return model.get_weights()[0].to_floats();
  };
  EXPECT_EQ(train(10, 5), train(20, 5));
  EXPECT_NE(train(10, 5), train(10, 6));
  EXPECT_NE(train(10, std::nullopt), train(20, std::nullopt));
}

TEST(Model, LearningRateCallbacks) {
  Blobs data(64);
  clear_session();
  set_random_seed(7);
  Sequential model = small_mlp();
  model.compile(SGD(SGDOptions{.learning_rate = 0.1}), "sparse_categorical_crossentropy");
  // min_delta so large that no epoch after the first improves: patience 1 divides the rate by 10 twice.
  auto plateau = std::make_shared<ReduceLROnPlateau>(ReduceLROnPlateauOptions{.monitor = "loss", .patience = 1, .min_delta = 1e9});
  model.fit(data.x, data.y, {.epochs = 3, .verbose = 0, .callbacks = {plateau}});
  EXPECT_NEAR(model.optimizer()->learning_rate(), 0.001, 1e-9);
  // A schedule per epoch: set at the start of epochs 0, 1, 2.
  auto scheduler = std::make_shared<LearningRateScheduler>([](int epoch, double) { return 0.1 * std::pow(0.5, epoch); });
  model.fit(data.x, data.y, {.epochs = 3, .verbose = 0, .callbacks = {scheduler}});
  EXPECT_NEAR(model.optimizer()->learning_rate(), 0.025, 1e-9);
  auto decay = std::make_shared<LearningRateScheduler>(std::make_shared<schedules::ExponentialDecay>(0.2, 1, 0.5));
  model.fit(data.x, data.y, {.epochs = 2, .verbose = 0, .callbacks = {decay}});
  EXPECT_NEAR(model.optimizer()->learning_rate(), 0.1, 1e-7);
}

TEST(Model, CallbacksSeeEveryBatchAndCanStopTraining) {
  clear_session();
  Blobs data(64);
  Sequential model = small_mlp();
  model.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  auto cb = std::make_shared<LambdaCallback>();
  int batches = 0, epochs = 0;
  cb->on_train_batch_end_fn = [&](std::int64_t, const Logs& logs) {
    ++batches;
    EXPECT_TRUE(logs.count("loss") && logs.count("accuracy"));
  };
  cb->on_epoch_end_fn = [&](int epoch, const Logs&) {
    ++epochs;
    if (epoch == 2) cb->model()->stop_training = true;
  };
  const History h = model.fit(data.x, data.y, {.epochs = 10, .batch_size = 16, .verbose = 0, .callbacks = {cb}});
  EXPECT_EQ(epochs, 3);
  EXPECT_EQ(batches, 12);
  EXPECT_EQ(h.epoch, (std::vector<int>{0, 1, 2}));
  // initial_epoch continues the count.
  const History h2 = model.fit(data.x, data.y, {.epochs = 5, .verbose = 0, .initial_epoch = 3});
  EXPECT_EQ(h2.epoch, (std::vector<int>{3, 4}));
}

TEST(Model, TrainOnBatchLowersTheLoss) {
  clear_session();
  set_random_seed(2);
  Blobs data(32);
  Sequential model = small_mlp();
  model.compile(SGD(SGDOptions{.learning_rate = 0.5}), "sparse_categorical_crossentropy", {"accuracy"});
  const double before = model.test_on_batch(data.x, data.y).at("loss");
  for (int i = 0; i < 20; ++i) model.train_on_batch(data.x, data.y);
  EXPECT_LT(model.test_on_batch(data.x, data.y).at("loss"), before * 0.5);
}

TEST(Model, WeightsLayersAndErrors) {
  clear_session();
  Sequential model = small_mlp();
  EXPECT_EQ(model.get_layer("dense_1")->class_name(), "Dense");
  EXPECT_EQ(model.get_layer(0)->name(), "dense");
  EXPECT_THROW(model.get_layer("conv"), std::invalid_argument);
  auto w = model.get_weights();
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].shape(), (Shape{4, 16}));
  w[1] = Array::from_floats(std::vector<float>(16, 0.5f), {16});
  model.set_weights(w);
  EXPECT_EQ(model.get_weights()[1].to_floats(), std::vector<float>(16, 0.5f));
  w[0] = Array({5, 16});
  try {
    model.set_weights(w);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "set_weights: weight 'dense/kernel' has shape (4, 16), got an array of shape (5, 16)");
  }
  model.compile("adam", "sparse_categorical_crossentropy");
  try {
    model.fit(Array({10, 5}), Array({10}, DType::int32), {.verbose = 0});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "fit: input 'input_layer' of model 'sequential' expects shape (None, 4), got data of shape (10, 5)");
  }
  EXPECT_THROW(model.fit(Array({10, 4}), Array({9}, DType::int32), {.verbose = 0}), std::invalid_argument);
  // A label past the last class is named by the loss that read it.
  try {
    model.fit(Array({2, 4}), Array::from_ints({0, 5}, {2}), {.verbose = 0});
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "sparse_categorical_crossentropy: gather: index 5 is out of range [0, 3)");
  }
  EXPECT_THROW(Sequential({Input({4}), Dense(3), Reshape({2, 2})}), std::invalid_argument);
}

TEST(Model, SequentialWithoutInputBuildsFromData) {
  clear_session();
  Blobs data(16);
  Sequential model({Dense(3, {.activation = "softmax"})});
  EXPECT_NE(model.summary_string().find("0 (unbuilt)"), std::string::npos);
  model.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  model.fit(data.x, data.y, {.verbose = 0});
  EXPECT_EQ(model.count_params(), 15);
}

TEST(Model, Int64InputsTakeTokenIdsExactly) {
  // Keras's text models declare Input(dtype="int64"): arrays are fed as int64, integers converted
  // exactly (not through a float, which would turn 2^24 + 1 into 2^24).
  const Array ids = Array::from_ints({16777217, -5, 3}, {3, 1});
  std::vector<std::int64_t> fed(3);
  ids.gather_rows(std::vector<std::int64_t>{0, 1, 2}, DType::int64, fed.data());
  EXPECT_EQ(fed, (std::vector<std::int64_t>{16777217, -5, 3}));
  clear_session();
  auto embedding = std::make_shared<Embedding>(4, 2);
  Sequential model({Input({2}, {.dtype = DType::int64}), embedding, Flatten()});
  const std::vector<float> table = embedding->weights()[0]->to_vector();
  const auto y = model.predict(Array::from_ints({3, 0, 1, 2}, {2, 2}), {.verbose = 0}).to_floats();
  const std::vector<float> want{table[6], table[7], table[0], table[1], table[2], table[3], table[4], table[5]};
  EXPECT_EQ(y, want);
}

TEST(Model, MetricsByNameInLogs) {
  clear_session();
  Blobs data(32);
  std::vector<float> onehot(32 * 3, 0.f);
  const auto labels = data.y.to_floats();
  for (int i = 0; i < 32; ++i) onehot[std::size_t(i * 3 + int(labels[std::size_t(i)]))] = 1.f;
  Sequential model = small_mlp();
  model.compile("adam", "categorical_crossentropy", {"accuracy", "mse", "auc", "precision", "recall", "top_k_categorical_accuracy"});
  const Logs logs = model.evaluate(data.x, Array::from_floats(onehot, {32, 3}), {.verbose = 0});
  for (const char* key : {"loss", "accuracy", "mse", "auc", "precision", "recall", "top_k_categorical_accuracy"})
    EXPECT_TRUE(logs.count(key)) << key;
  EXPECT_EQ(logs.at("top_k_categorical_accuracy"), 1.0);  // 3 classes, k = 5
}

TEST(Progbar, PlainOutputIsOneLinePerEpoch) {
  std::FILE* f = std::tmpfile();
  Progbar bar(422, f, false);
  for (int i = 1; i < 422; ++i) bar.update(i, {{"loss", 0.5}}, false);
  bar.update(422, {{"accuracy", 0.8512}, {"loss", 0.421}, {"val_accuracy", 0.85}, {"val_loss", 0.4}}, true);
  std::rewind(f);
  char buffer[512] = {};
  const std::size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, f);
  std::fclose(f);
  const std::string text(buffer, n);
  EXPECT_TRUE(std::regex_match(text, std::regex("422/422 (━){20} \\d+s \\d+[mu]?s/step - accuracy: 0\\.8512 - loss: 0\\.4210 - "
                                                "val_accuracy: 0\\.8500 - val_loss: 0\\.4000\n")))
      << text;
}

TEST(Progbar, VerboseTwoIsKerasOneLineSummary) {
  std::FILE* f = std::tmpfile();
  Progbar bar(469, f, true, true);
  for (int i = 1; i < 469; ++i) bar.update(i, {{"loss", 0.5}}, false);
  bar.update(469, {{"accuracy", 0.7541}, {"loss", 0.6674}}, true);
  std::rewind(f);
  char buffer[512] = {};
  const std::size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, f);
  std::fclose(f);
  const std::string text(buffer, n);
  EXPECT_TRUE(std::regex_match(text, std::regex("469/469 - \\d+s - \\d+[mu]?s/step - accuracy: 0\\.7541 - loss: 0\\.6674\n"))) << text;
}

}  // namespace
}  // namespace strata
