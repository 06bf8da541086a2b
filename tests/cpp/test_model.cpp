// dpgraph::Model: refusal of packages it cannot run, validation of inputs.
#include "dpgraph/model.h"

#include "dpgraph/error.h"
#include "dpgraph/graph_builder.h"
#include "fixtures.h"

namespace {

// The error message of loading `file`, or "" if it loaded.
std::string load_error(const std::string& file, const std::string& device = "") {
  try {
    dpgraph::Model m(fixtures::path(file), device);
    return "";
  } catch (const dpgraph::Error& e) {
    return e.what();
  }
}

void expect_refused(const std::string& file, const std::string& cause, const std::string& device = "") {
  const std::string msg = load_error(file, device);
  ASSERT_FALSE(msg.empty()) << file << " was loaded";
  EXPECT_NE(msg.find(cause), std::string::npos) << file << ": " << msg;
}

TEST(Refusal, MissingFile) { expect_refused("no_such_model.pt2", "does not exist"); }
TEST(Refusal, NotAZip) { expect_refused("not_a_zip.pt2", "not a .pt2 package (not a zip archive)"); }
TEST(Refusal, Truncated) { expect_refused("truncated.pt2", "truncated"); }
TEST(Refusal, CorruptMember) { expect_refused("flipped.pt2", "fails its CRC-32 check"); }
TEST(Refusal, ForeignZip) { expect_refused("foreign.pt2", "not an AOTInductor package"); }
TEST(Refusal, ForeignAotiPackage) { expect_refused("not_dpgraph.pt2", "not a dpgraph model"); }
TEST(Refusal, WrongAbi) { expect_refused("wrong_abi.pt2", "ABI version 99 but this dpgraph reads version 1"); }
TEST(Refusal, WrongTorch) { expect_refused("wrong_torch.pt2", "compiled with torch 1.0.0+cpu"); }
TEST(Refusal, WrongDtype) { expect_refused("wrong_dtype.pt2", "unsupported dtype 'float16'"); }
TEST(Refusal, WrongDevice) { expect_refused("model.pt2", "compiled for cpu but cuda was requested", "cuda"); }
TEST(Refusal, CudaPackageWithoutGpu) {
  if (at::hasCUDA()) GTEST_SKIP() << "a CUDA device is present";
  expect_refused("cuda_only.pt2", "needs CUDA but no CUDA device");
}

class ModelRun : public ::testing::Test {
 protected:
  static dpgraph::Model& model() {
    static dpgraph::Model m(fixtures::path("model.pt2"));
    return m;
  }
  static dpgraph::NeighborGraph graph() {
    auto c = fixtures::load("triclinic");
    return dpgraph::build_graph(c["coords"].reshape({-1, 3}), c["atype"], c["cell"].reshape({3, 3}),
                                {true, true, true}, 4.0, at::kDouble);
  }
  static std::string run_error(const dpgraph::NeighborGraph& g) {
    try {
      model().run(g);
      return "";
    } catch (const dpgraph::Error& e) {
      return e.what();
    }
  }
  static void expect_invalid(const dpgraph::NeighborGraph& g, const std::string& cause) {
    const std::string msg = run_error(g);
    ASSERT_FALSE(msg.empty()) << "accepted an invalid graph (" << cause << ")";
    EXPECT_NE(msg.find(cause), std::string::npos) << msg;
  }
};

TEST_F(ModelRun, ValidGraphRuns) { EXPECT_EQ(run_error(graph()), ""); }

TEST_F(ModelRun, WrongDtypeEdgeVec) {
  auto g = graph();
  g.edge_vec = g.edge_vec.to(at::kFloat);
  expect_invalid(g, "edge_vec is Float but the model runs in Double");
}

TEST_F(ModelRun, Int32Indices) {
  auto g = graph();
  g.edge_index = g.edge_index.to(at::kInt);
  expect_invalid(g, "edge_index must be int64");
}

TEST_F(ModelRun, NonContiguous) {
  auto g = graph();
  g.edge_vec = g.edge_vec.t().contiguous().t();
  expect_invalid(g, "contiguous");
}

TEST_F(ModelRun, UnsortedEdges) {
  auto g = graph();
  g.edge_index = g.edge_index.flip({1}).contiguous();
  g.edge_vec = g.edge_vec.flip({0}).contiguous();
  g.edge_mask = g.edge_mask.flip({0}).contiguous();
  expect_invalid(g, "last 2 edges must be masked padding");
  auto h = graph();
  const int64_t e = h.n_edges() - 2;
  auto perm = at::cat({at::arange(e, at::kLong).flip({0}), at::arange(e, e + 2, at::kLong)});
  h.edge_index = h.edge_index.index_select(1, perm).contiguous();
  h.edge_vec = h.edge_vec.index_select(0, perm).contiguous();
  expect_invalid(h, "sorted by dst");
}

TEST_F(ModelRun, MissingPadding) {
  auto g = graph();
  g.edge_mask = at::ones_like(g.edge_mask);
  expect_invalid(g, "masked padding");
}

TEST_F(ModelRun, IndexOutOfRange) {
  auto g = graph();
  g.edge_index = g.edge_index.clone();
  g.edge_index[0][0] = g.n_nodes();
  expect_invalid(g, "outside [0, N)");
}

TEST_F(ModelRun, TypeOutOfRange) {
  auto g = graph();
  g.atype = g.atype.clone();
  g.atype[0] = 7;
  expect_invalid(g, "type index 7 but the model has 3 types");
}

TEST_F(ModelRun, NodeCountMismatch) {
  auto g = graph();
  g.n_node = g.n_node.clone();
  g.n_node[0][0] = 3;
  expect_invalid(g, "sum(n_node[:, 0])");
}

TEST_F(ModelRun, NonFiniteEdgeVec) {
  auto g = graph();
  g.edge_vec = g.edge_vec.clone();
  g.edge_vec[1][2] = std::nan("");
  expect_invalid(g, "non-finite");
}

TEST_F(ModelRun, EmptyGraphGivesZeros) {
  dpgraph::NeighborGraph g;
  auto l = at::TensorOptions().dtype(at::kLong);
  g.atype = at::zeros({0}, l);
  g.n_node = at::zeros({1, 2}, l);
  g.edge_index = at::zeros({2, 2}, l);
  g.edge_vec = at::zeros({2, 3}, at::kDouble);
  g.edge_mask = at::zeros({2}, at::kBool);
  auto out = model().run(g);
  EXPECT_EQ(out.energy.item<double>(), 0.0);
  EXPECT_EQ(out.force.size(0), 0);
  EXPECT_EQ(out.virial.abs().sum().item<double>(), 0.0);
}

TEST(Metadata, ReadsTypeMapAndCutoff) {
  dpgraph::ModelInfo info = dpgraph::check_package(fixtures::path("model.pt2"));
  EXPECT_EQ(info.type_map, (std::vector<std::string>{"O", "H", "C"}));
  EXPECT_DOUBLE_EQ(info.rcut, 4.0);
  EXPECT_DOUBLE_EQ(info.receptive_field, 4.0);
  EXPECT_EQ(info.outputs.size(), 5u);
}

// check_metadata on a map edited from a real package's: every malformed field is named.
void expect_metadata_refused(const std::string& key, const std::string& value, const std::string& cause,
                             const std::string& cpu_isa = "") {
  auto meta = dpgraph::read_package_metadata(fixtures::path("model.pt2"));
  meta[key] = value;
  try {
    dpgraph::check_metadata(meta, "m.pt2", "", cpu_isa);
    FAIL() << key << " = " << value << " was accepted";
  } catch (const dpgraph::Error& e) {
    EXPECT_NE(std::string(e.what()).find(cause), std::string::npos) << e.what();
  }
}

TEST(Metadata, MalformedFieldsAreRefused) {
  expect_metadata_refused("type_map", "[\"O\", ", "malformed type_map");
  expect_metadata_refused("type_map", "[1, 2]", "malformed type_map");
  expect_metadata_refused("type_map", "[]", "empty type_map");
  expect_metadata_refused("outputs", "{}", "malformed outputs");
  expect_metadata_refused("rcut", "six", "malformed 'rcut'");
  expect_metadata_refused("cpu_isa", "avx512", "--portable", "default");
  expect_metadata_refused("cpu_isa", "sse9", "unknown CPU instruction set");
}

}  // namespace
