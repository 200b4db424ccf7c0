#pragma once
// Merging gated experts without retraining (M-SMoE, ALGORITHMS.md §4): align each member's
// hidden neurons to a reference expert, then take the frequency-weighted average of every
// matrix and bias. A hidden neuron a of an expert is row a of gate and up, element a of
// their biases and column a of down; permuting neurons jointly in all of them leaves the
// expert's function unchanged (the activation is element-wise), so alignment only decides
// which neurons get averaged together. The down bias belongs to no neuron and is averaged
// as it is.
#include <vector>

#include "compress/dense.h"
#include "core/thread_pool.h"

namespace mcmoe::compress {

// The permutation perm (perm[a] = neuron of `e` placed at position a) maximising
// Σ_a gate_ref[a]·gate_e[perm[a]] + up_ref[a]·up_e[perm[a]] + down_ref[:,a]·down_e[:,perm[a]],
// by linear sum assignment over the n_ff × n_ff similarity matrix: O(n_ff² · n_embd) for
// the similarities plus O(n_ff³) for the assignment. With biases, a gate/up row is the
// affine row [w | b] (the bias is the weight of a constant input 1), so the products of the
// two neurons' gate and up biases join their similarity.
std::vector<int> align_neurons(const DenseExpert& ref, const DenseExpert& e, ThreadPool& pool);

// e with its neurons reordered: gate/up row a, gate/up bias a and down column a come from
// neuron perm[a].
DenseExpert permute_neurons(const DenseExpert& e, const std::vector<int>& perm);

// Σ_i w_i E_i / Σ_i w_i matrix by matrix and bias by bias; equal weights when they sum to
// zero (experts the calibration text never reached). All experts must have one shape, the
// same biases and the same activation.
DenseExpert average_experts(const std::vector<const DenseExpert*>& experts, const std::vector<double>& weights);

// Aligns every member to members[ref] and averages with the given weights.
DenseExpert merge_experts(const std::vector<DenseExpert>& members, const std::vector<double>& weights, int ref,
                          ThreadPool& pool);

}  // namespace mcmoe::compress
