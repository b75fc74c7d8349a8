#pragma once
// `normexp data prepare imagenet`: the official ILSVRC 2012 archives into the class-folder
// layout that data.name imagenet reads (data/imagenet.h).
//
//   ILSVRC2012_img_train.tar   a tar of 1,000 tars, <wnid>.tar, each holding <wnid>_<k>.JPEG
//   ILSVRC2012_img_val.tar     50,000 flat ILSVRC2012_val_<8 digits>.JPEG
//   ILSVRC2012_devkit_t12.tar.gz (or its extracted directory)
//       data/meta.mat                                  `synsets`: ILSVRC2012_ID -> WNID, words
//       data/ILSVRC2012_validation_ground_truth.txt    one ILSVRC2012_ID per validation image
//
// Streaming: each class tar is read from inside the outer tar (libarchive), one image in
// memory at a time, into `<root>/.imagenet.partial/`; a class is renamed into place there
// when complete, so an interrupted run (a signal, a crash, a full disk) resumes by skipping
// the finished classes. Every image is checked (a JPEG header and end, else a full decode);
// ImageNet's one PNG disguised as a JPEG is converted (libpng -> libjpeg-turbo), its CMYK
// JPEGs are kept (the loader converts them). Bad data — a truncated or non-image file, an
// unsafe or unexpected entry, counts that differ from the release — is an error naming the
// archive and entry, and removes the partial copy: nothing half-done is left. Only a complete,
// checked copy is renamed to `<root>/imagenet`.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/imagenet.h"

namespace normexp::data {

// Whether this build reads the devkit's meta.mat (matio) and tar archives (libarchive).
bool built_with_matio();

struct ImageNetPrepareOptions {
  std::filesystem::path train_tar, val_tar, devkit;
  std::filesystem::path root = "data";  // the layout goes to <root>/imagenet
  // What to check (tests pass tiny releases): images and classes.
  int64_t train_count = kImageNetTrain, val_count = kImageNetVal, classes = kImageNetClasses;
};

struct ImageNetPrepareResult {
  std::filesystem::path dir;  // <root>/imagenet
  int64_t train = 0, val = 0, classes = 0;
  int64_t converted = 0;       // non-JPEG images re-encoded as JPEG
  int64_t resumed_classes = 0;  // classes found complete from an interrupted earlier run
};

// One synset of meta.mat with an ILSVRC2012_ID in 1..classes: the 1,000 leaf classes.
struct ImageNetClass {
  int64_t id = 0;  // ILSVRC2012_ID, 1-based
  std::string wnid, words;
};
// The leaf classes of the devkit's meta.mat, ordered by ILSVRC2012_ID. RunError naming the
// file when it is not a MAT-file with a `synsets` struct array of those fields, or ids
// 1..classes are not all there.
std::vector<ImageNetClass> read_imagenet_meta(const std::filesystem::path& meta_mat,
                                              int64_t classes);

ImageNetPrepareResult prepare_imagenet(const ImageNetPrepareOptions& opt);

}  // namespace normexp::data
