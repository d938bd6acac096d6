#include "layout.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace mhac::detail {

namespace {

std::string axes_to_string(const std::vector<int> &axes) {
    std::string s = "(";
    for (size_t i = 0; i < axes.size(); i++) s += (i ? ", " : "") + std::to_string(axes[i]);
    return s + (axes.size() == 1 ? ",)" : ")");
}

// Row-major offset walk over the non-feature axes in `order`: calls
// f(source row index) once per row, in the order rows appear in
// [order[0], order[1], ...] layout.
template <typename F>
void for_each_row(const Shape &shape, const std::vector<int> &order, F &&f) {
    const int r = static_cast<int>(shape.size()) - 1;  // non-feature axes
    std::vector<int64_t> stride(r, 1);
    for (int a = r - 2; a >= 0; a--) stride[a] = stride[a + 1] * shape[a + 1];
    std::vector<int64_t> idx(order.size(), 0);
    int64_t rows = 1;
    for (int a = 0; a < r; a++) rows *= shape[a];
    for (int64_t i = 0; i < rows; i++) {
        int64_t src = 0;
        for (size_t k = 0; k < order.size(); k++) src += idx[k] * stride[order[k]];
        f(i, src);
        for (int k = static_cast<int>(order.size()) - 1; k >= 0; k--) {
            if (++idx[k] < shape[order[k]]) break;
            idx[k] = 0;
        }
    }
}

std::vector<int> row_order(const AxesPlan &plan) {
    std::vector<int> order = plan.batch_axes;
    order.insert(order.end(), plan.attention_axes.begin(), plan.attention_axes.end());
    return order;
}

}  // namespace

void plan_axes(const std::vector<int> &attention_axes, const Shape &query, const Shape &value,
               AxesPlan &p) {
    p.rank = static_cast<int>(query.size());
    p.batch_axes.clear();
    p.batch = p.queries = p.keys = 1;
    if (value.size() != query.size()) {
        throw Error("query and value must have the same rank. Received: query shape " +
                    shape_to_string(query) + " and value shape " + shape_to_string(value));
    }
    if (p.rank < 3) {
        throw Error("query must have rank >= 3 [batch, positions..., features], got shape " +
                    shape_to_string(query));
    }
    std::vector<int> &axes = p.attention_axes;
    axes.clear();
    if (attention_axes.empty()) {
        for (int a = 1; a <= p.rank - 2; a++) axes.push_back(a);
    } else {
        for (int a : attention_axes) {
            int r = a < 0 ? a + p.rank : a;  // Keras >= 3.12: counted against the input rank
            if (r < 1 || r > p.rank - 2) {
                throw Error("attention_axes " + axes_to_string(attention_axes) +
                            " must name axes between 1 and " + std::to_string(p.rank - 2) +
                            " (or their negatives) for inputs of rank " + std::to_string(p.rank) +
                            ", shape " + shape_to_string(query));
            }
            if (std::find(axes.begin(), axes.end(), r) != axes.end()) {
                throw Error("attention_axes " + axes_to_string(attention_axes) + " names axis " +
                            std::to_string(r) + " twice");
            }
            axes.push_back(r);
        }
        std::sort(axes.begin(), axes.end());
    }
    for (int a = 0; a <= p.rank - 2; a++) {
        if (std::find(axes.begin(), axes.end(), a) == axes.end()) p.batch_axes.push_back(a);
    }
    for (int a : p.batch_axes) {
        if (query[a] != value[a]) {
            throw Error("query and value must agree on every axis outside attention_axes " +
                        axes_to_string(p.attention_axes) + " (axis " + std::to_string(a) +
                        "). Received: query shape " + shape_to_string(query) + " and value shape " +
                        shape_to_string(value));
        }
        p.batch *= query[a];
    }
    for (int a : axes) {
        p.queries *= query[a];
        p.keys *= value[a];
    }
    // Already in [batch axes..., attention axes...] order iff the attention
    // axes are the trailing non-feature axes.
    p.needs_transpose = axes.front() != p.rank - 1 - static_cast<int>(axes.size());
}

void gather_rows(const float *src, const Shape &shape, const AxesPlan &plan, float *dst) {
    const int64_t e = shape.back();
    for_each_row(shape, row_order(plan), [&](int64_t row, int64_t src_row) {
        std::memcpy(dst + row * e, src + src_row * e, sizeof(float) * static_cast<size_t>(e));
    });
}

void scatter_rows(const float *src, const Shape &shape, int64_t features, const AxesPlan &plan,
                  float *dst) {
    Shape positions(shape.begin(), shape.begin() + plan.rank - 1);
    positions.push_back(features);
    for_each_row(positions, row_order(plan), [&](int64_t row, int64_t dst_row) {
        std::memcpy(dst + dst_row * features, src + row * features,
                    sizeof(float) * static_cast<size_t>(features));
    });
}

}  // namespace mhac::detail
