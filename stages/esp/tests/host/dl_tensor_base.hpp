// Host stand-in for ESP-DL's dl_tensor_base.hpp (esp-dl 3.x, dl/tensor/include): the members and
// accessors the generated firmware's chain code uses, with the documented names and types.
#pragma once
#include <cstdint>
#include <vector>

namespace dl {

typedef enum {
    DATA_TYPE_UNDEFINED = 0,
    DATA_TYPE_FLOAT = 1,
    DATA_TYPE_UINT8 = 2,
    DATA_TYPE_INT8 = 3,
    DATA_TYPE_UINT16 = 4,
    DATA_TYPE_INT16 = 5,
    DATA_TYPE_INT32 = 6,
} dtype_t;

class TensorBase {
public:
    int size;                ///< elements
    std::vector<int> shape;  ///< NHWC, as ESP-DL lays activations out
    dtype_t dtype;
    int exponent;            ///< value = element * 2^exponent
    void *data;

    TensorBase(std::vector<int> shape_, int exponent_, dtype_t dtype_)
        : size(1), shape(shape_), dtype(dtype_), exponent(exponent_), data(nullptr)
    {
        for (int d : shape) {
            size *= d;
        }
        data = dtype == DATA_TYPE_INT16 ? (void *)new int16_t[size]() : (void *)new int8_t[size]();
    }
    virtual ~TensorBase()
    {
        if (dtype == DATA_TYPE_INT16) {
            delete[] (int16_t *)data;
        } else {
            delete[] (int8_t *)data;
        }
    }
    int get_size() { return size; }
    int get_exponent() { return exponent; }
    dtype_t get_dtype() { return dtype; }
    std::vector<int> get_shape() { return shape; }
    template <typename T>
    T *get_element_ptr() { return (T *)data; }
};

}  // namespace dl
