//! The model zoo: each model has its config, a loader that binds real checkpoints (HF
//! directories, torchvision/timm state dicts, GGUF), its forward pass, task heads and the
//! named parameter paths that freezing and learning-rate groups select on.

pub mod bert;
pub mod bert_flavor;
pub mod decoder;
pub mod efficientnet;
pub mod gpt2;
pub mod llama;
pub mod lm_loss;
pub mod model;
pub mod registry;
pub mod resnet;
pub mod seq_head;
pub mod vgg;
pub mod vit;
pub mod zoo;
