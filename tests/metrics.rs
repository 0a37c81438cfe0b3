//! Evaluation metrics and statistics against hand-computed values (the arithmetic is in the
//! comments). Where scikit-learn / statsmodels define the same quantity, the expected value is
//! what they return for the same input.

use std::cell::Cell;

use whet::eval::*;
use whet::Error;

fn close(got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "got {got}, want {want} (tol {tol})");
}

/// Rows as written; values are exact f32 decimals only to ~1e-8, hence the tolerances.
fn preds(rows: &[&[f32]], labels: &[usize]) -> Predictions {
    let classes = rows[0].len();
    Predictions::new(rows.concat(), labels.to_vec(), classes).unwrap()
}

/// Binary predictions where item i has label `i % 2` and is predicted right when `correct[i]`.
fn from_correctness(correct: &[bool]) -> Predictions {
    let mut probs = Vec::new();
    let labels: Vec<usize> = (0..correct.len()).map(|i| i % 2).collect();
    for (i, &ok) in correct.iter().enumerate() {
        let predicted = if ok { i % 2 } else { 1 - i % 2 };
        probs.extend_from_slice(if predicted == 0 { &[0.8, 0.2] } else { &[0.2, 0.8] });
    }
    Predictions::new(probs, labels, 2).unwrap()
}

// ---------------------------------------------------------------- Predictions

#[test]
fn predictions_new_rejects_bad_input_with_typed_errors() {
    let arg = |r: whet::Result<Predictions>| matches!(r, Err(Error::InvalidArgument { .. }));
    assert!(arg(Predictions::new(vec![], vec![], 2)), "empty");
    assert!(arg(Predictions::new(vec![1.0], vec![0], 0)), "zero classes");
    assert!(matches!(Predictions::new(vec![0.5, 0.5, 1.0], vec![0, 1], 2), Err(Error::Shape { .. })));
    assert!(arg(Predictions::new(vec![0.5, 0.5], vec![2], 2)), "label out of range");
    assert!(arg(Predictions::new(vec![1.5, -0.5], vec![0], 2)), "negative probability");
    assert!(arg(Predictions::new(vec![f32::NAN, 1.0], vec![0], 2)), "NaN");
    assert!(arg(Predictions::new(vec![0.5, 0.6], vec![0], 2)), "row sums to 1.1");
    // Logits passed by mistake.
    let e = Predictions::new(vec![2.0, -1.0, 0.3, 0.1], vec![0, 1], 2).unwrap_err().to_string();
    assert!(e.contains("item 0"), "{e}");
    let e = Predictions::new(vec![0.5, 0.5, 0.3, 0.3], vec![0, 1], 2).unwrap_err().to_string();
    assert!(e.contains("item 1") && e.contains("sum"), "{e}");
    // Within the f32 rounding tolerance is fine.
    assert!(Predictions::new(vec![0.3333, 0.3333, 0.3334], vec![2], 3).is_ok());
}

#[test]
fn predicted_correct_and_subset() {
    let p = preds(&[&[0.7, 0.2, 0.1], &[0.4, 0.4, 0.2], &[0.1, 0.3, 0.6]], &[0, 1, 2]);
    assert_eq!(p.len(), 3);
    // Tie between classes 0 and 1 in row 1 goes to class 0.
    assert_eq!(p.predicted(), vec![0, 0, 2]);
    assert_eq!(p.correct(), vec![true, false, true]);
    let s = p.subset(&[2, 2, 0]);
    assert_eq!(s.labels, vec![2, 2, 0]);
    assert_eq!(s.predicted(), vec![2, 2, 0]);
    assert!(p.subset(&[]).is_empty());
}

// ---------------------------------------------------------------- accuracy, top-k

#[test]
fn accuracy_and_top_k_by_hand() {
    // label ranks: item0 0 (0.7 top), item1 1 (0.5 beats 0.3), item2 2 (0.5, 0.3 beat 0.2),
    // item3 0 (0.6 top). top-1 = 2/4, top-2 = 3/4, top-3 = 4/4.
    let p = preds(&[&[0.7, 0.2, 0.1], &[0.3, 0.5, 0.2], &[0.2, 0.3, 0.5], &[0.1, 0.6, 0.3]], &[0, 0, 0, 1]);
    assert_eq!(accuracy(&p), 0.5);
    assert_eq!(top_k(&p, 1), 0.5);
    assert_eq!(top_k(&p, 2), 0.75);
    assert_eq!(top_k(&p, 3), 1.0);
    assert_eq!(top_k(&p, 0), 0.0);
    assert_eq!(top_k(&p, 10), 1.0);
    // A tie ranks the lower class index first, as argmax does: label 1 tied with class 0 is
    // rank 1, so top-1 misses (and accuracy agrees) while top-2 hits.
    let t = preds(&[&[0.4, 0.4, 0.2]], &[1]);
    assert_eq!((accuracy(&t), top_k(&t, 1), top_k(&t, 2)), (0.0, 0.0, 1.0));
}

#[test]
fn empty_predictions_give_nan_not_panics() {
    let p = preds(&[&[0.5, 0.5]], &[0]).subset(&[]);
    assert!(accuracy(&p).is_nan());
    assert!(top_k(&p, 1).is_nan());
    assert!(log_loss(&p).is_nan());
    assert!(brier(&p).is_nan());
    assert!(ece(&p, 10).is_nan());
    assert_eq!(roc_auc_ovr(&p), None);
    assert!(classification_metrics(&p).is_empty());
    let s = prf(&confusion(&p));
    assert!(s.macro_avg.f1.is_nan() && s.micro.f1.is_nan() && s.weighted.f1.is_nan());
    assert!(mcc(&confusion(&p)).is_nan());
}

// ---------------------------------------------------------------- confusion, P/R/F1

/// truth [0,0,1,1,2,2], predicted [0,1,1,1,0,1]: class 2 is never predicted.
fn never_predicted(classes: usize) -> Predictions {
    let as0: Vec<f32> = [0.6, 0.3, 0.1, 0.0][..classes].to_vec();
    let as1: Vec<f32> = [0.2, 0.7, 0.1, 0.0][..classes].to_vec();
    let rows = [&as0, &as1, &as1, &as1, &as0, &as1];
    let probs: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Predictions::new(probs, vec![0, 0, 1, 1, 2, 2], classes).unwrap()
}

#[test]
fn prf_with_a_class_never_predicted_counts_zero_division_as_zero() {
    let c = confusion(&never_predicted(3));
    // rows = truth: [1 1 0] [0 2 0] [1 1 0]
    assert_eq!(c.counts, vec![1, 1, 0, 0, 2, 0, 1, 1, 0]);
    assert_eq!((c.get(2, 0), c.true_count(2), c.pred_count(1), c.total()), (1, 2, 4, 6));
    let s = prf(&c);
    // class 0: tp 1, predicted 2, true 2 -> P 1/2, R 1/2, F1 2/(2+2) = 1/2
    // class 1: tp 2, predicted 4, true 2 -> P 1/2, R 1,   F1 4/(4+2) = 2/3
    // class 2: tp 0, predicted 0, true 2 -> P 0/0 = 0, R 0, F1 0
    let want = [(0.5, 0.5, 0.5), (0.5, 1.0, 2.0 / 3.0), (0.0, 0.0, 0.0)];
    for (k, (got, w)) in s.per_class.iter().zip(want).enumerate() {
        close(got.precision, w.0, 1e-12);
        close(got.recall, w.1, 1e-12);
        close(got.f1, w.2, 1e-12);
        assert_eq!(got.support, 2, "class {k}");
    }
    // macro: P (1/2 + 1/2 + 0)/3 = 1/3, R (1/2 + 1 + 0)/3 = 1/2, F1 (1/2 + 2/3 + 0)/3 = 7/18
    // (sklearn f1_score(average="macro") = 0.3888...); equal supports make weighted the same.
    for avg in [s.macro_avg, s.weighted] {
        close(avg.precision, 1.0 / 3.0, 1e-12);
        close(avg.recall, 0.5, 1e-12);
        close(avg.f1, 7.0 / 18.0, 1e-12);
        assert_eq!(avg.support, 6);
    }
    // micro = accuracy = 3/6
    assert_eq!((s.micro.precision, s.micro.recall, s.micro.f1), (0.5, 0.5, 0.5));
    // balanced accuracy: mean recall over classes with items = (1/2 + 1 + 0)/3
    close(balanced_accuracy(&c), 0.5, 1e-12);
    // MCC: s = 6, correct 3, t = [2,2,2], p = [2,4,0]: (3·6 − (4+8+0)) / √((36−20)(36−12))
    //    = 6 / √384 = 0.30618621784789724
    close(mcc(&c), 0.306_186_217_847_897_24, 1e-12);
}

#[test]
fn macro_average_leaves_out_classes_absent_from_labels_and_predictions() {
    // The same data with a 4th class that never occurs: sklearn (labels=None) averages over
    // the 3 classes it sees, so macro F1 stays 7/18; per_class still lists class 3 as zeros.
    let s = prf(&confusion(&never_predicted(4)));
    assert_eq!(s.per_class.len(), 4);
    close(s.macro_avg.f1, 7.0 / 18.0, 1e-12);
    close(s.macro_avg.precision, 1.0 / 3.0, 1e-12);
}

#[test]
fn weighted_average_uses_support() {
    // truth [0,0,0,1], predicted [0,0,1,1]
    // class 0: P 2/2 = 1, R 2/3, F1 4/5;  class 1: P 1/2, R 1, F1 2/3
    let c = Confusion::from_labels(2, &[0, 0, 0, 1], &[0, 0, 1, 1]);
    let s = prf(&c);
    // weighted P = (3·1 + 1·1/2)/4 = 0.875; weighted R = (3·2/3 + 1·1)/4 = 0.75 (= accuracy);
    // weighted F1 = (3·4/5 + 1·2/3)/4 = 0.76667; macro F1 = (4/5 + 2/3)/2 = 0.73333
    close(s.weighted.precision, (3.0 * 1.0 + 0.5) / 4.0, 1e-12);
    close(s.weighted.recall, 0.75, 1e-12);
    close(s.weighted.f1, (3.0 * 0.8 + 2.0 / 3.0) / 4.0, 1e-12);
    close(s.macro_avg.f1, (0.8 + 2.0 / 3.0) / 2.0, 1e-12);
    // binary MCC with class 1 positive: tp 1, tn 2, fp 1, fn 0:
    // (tp·tn − fp·fn) / √((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = 2 / √(2·1·3·2) = 2/√12
    close(mcc(&c), 0.5773502691896258, 1e-12);
    // A constant predictor has MCC 0 (denominator 0), as in sklearn.
    assert_eq!(mcc(&Confusion::from_labels(2, &[0, 1, 1], &[1, 1, 1])), 0.0);
}

// ---------------------------------------------------------------- ROC, PR

#[test]
fn roc_curve_matches_sklearn_docs_example() {
    // sklearn roc_curve docs: y = [1, 1, 2, 2], scores [0.1, 0.4, 0.35, 0.8], pos_label = 2
    // -> fpr [0, 0, .5, .5, 1], tpr [0, .5, .5, 1, 1], thresholds [inf, .8, .4, .35, .1]
    let scores = [0.1, 0.4, 0.35, 0.8];
    let pos = [false, false, true, true];
    let c = roc_curve(&scores, &pos);
    assert_eq!(c.x, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
    assert_eq!(c.y, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
    assert_eq!(c.thresholds, vec![f64::INFINITY, 0.8, 0.4, 0.35, 0.1]);
    // roc_auc_score = 0.75
    assert_eq!(roc_auc(&scores, &pos), Some(0.75));
}

#[test]
fn roc_ties_form_one_threshold_and_count_half() {
    // Positives {0.4, 0.8}, negatives {0.1, 0.4}. Pairs: 0.8 beats both (2), 0.4 beats 0.1 (1)
    // and ties 0.4 (1/2) -> AUC 3.5/4 = 0.875. Curve: (0,0) (0,.5) (.5,1) (1,1).
    let pos = [false, false, true, true];
    let c = roc_curve(&[0.1, 0.4, 0.4, 0.8], &pos);
    assert_eq!(c.x, vec![0.0, 0.0, 0.5, 1.0]);
    assert_eq!(c.y, vec![0.0, 0.5, 1.0, 1.0]);
    assert_eq!(roc_auc(&[0.1, 0.4, 0.4, 0.8], &pos), Some(0.875));
    // Order of tied items does not matter.
    assert_eq!(roc_auc(&[0.8, 0.4, 0.4, 0.1], &[true, true, false, false]), Some(0.875));
    assert_eq!(roc_auc(&[0.8, 0.4, 0.4, 0.1], &[true, false, true, false]), Some(0.875));
    // All scores tied: the diagonal.
    assert_eq!(roc_auc(&[0.5; 4], &[true, false, true, false]), Some(0.5));
    // A perfectly reversed ranking.
    assert_eq!(roc_auc(&[0.9, 0.1], &[false, true]), Some(0.0));
}

#[test]
fn roc_undefined_cases_are_none_or_empty() {
    assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    assert_eq!(roc_auc(&[0.1, 0.2], &[false, false]), None);
    assert_eq!(roc_auc(&[], &[]), None);
    assert_eq!(roc_auc(&[0.1, 0.2], &[true]), None);
    assert_eq!(roc_auc(&[0.1, f64::NAN], &[true, false]), None);
    assert!(roc_curve(&[0.1], &[true, false]).x.is_empty());
    // Only positives: the false-positive rate is undefined (NaN), as sklearn gives.
    let c = roc_curve(&[0.1, 0.2], &[true, true]);
    assert!(c.x.iter().all(|v| v.is_nan()));
    assert_eq!(c.y, vec![0.0, 0.5, 1.0]);
}

#[test]
fn ovr_auc_multiclass_by_hand() {
    let p = preds(
        &[
            &[0.6, 0.3, 0.1], // a, label 0
            &[0.4, 0.4, 0.2], // b, label 0
            &[0.3, 0.5, 0.2], // c, label 1
            &[0.5, 0.2, 0.3], // d, label 1
            &[0.2, 0.2, 0.6], // e, label 2
            &[0.1, 0.6, 0.3], // f, label 2
        ],
        &[0, 0, 1, 1, 2, 2],
    );
    // class 0: pos {.6, .4} vs neg {.3, .5, .2, .1}: 4 + 3 = 7/8
    // class 1: pos {.5, .2} vs neg {.3, .4, .2, .6}: 3 + (tie with .2) 0.5 = 3.5/8
    // class 2: pos {.6, .3} vs neg {.1, .2, .2, .3}: 4 + 3 + (tie with .3) 0.5 = 7.5/8
    // macro = (0.875 + 0.4375 + 0.9375) / 3 = 0.75
    assert_eq!(roc_auc_ovr(&p), Some(0.75));
    // A class with no items: undefined (sklearn raises).
    let missing = p.subset(&[0, 1, 2, 3]);
    assert_eq!(roc_auc_ovr(&missing), None);
}

#[test]
fn ovr_auc_binary_is_the_auc_of_class_one() {
    // Class-1 scores [0.1, 0.4, 0.35, 0.8] with labels [0, 0, 1, 1]: the sklearn example, 0.75.
    let p = preds(&[&[0.9, 0.1], &[0.6, 0.4], &[0.65, 0.35], &[0.2, 0.8]], &[0, 0, 1, 1]);
    close(roc_auc_ovr(&p).unwrap(), 0.75, 0.0);
    assert_eq!(roc_auc_ovr(&preds(&[&[1.0]], &[0])), None);
}

#[test]
fn pr_curve_and_average_precision_match_sklearn() {
    // sklearn average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.8333...
    // Descending: .8 (pos) P 1 R .5; .4 (neg) P 1/2 R .5; .35 (pos) P 2/3 R 1; .1 (neg) P 1/2 R 1
    // AP = .5·1 + 0·(1/2) + .5·(2/3) + 0·(1/2) = 5/6
    let scores = [0.1, 0.4, 0.35, 0.8];
    let pos = [false, false, true, true];
    close(average_precision(&scores, &pos).unwrap(), 5.0 / 6.0, 1e-15);
    let c = pr_curve(&scores, &pos);
    assert_eq!(c.x, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
    assert_eq!(c.y, vec![1.0, 1.0, 0.5, 2.0 / 3.0, 0.5]);
    assert_eq!(c.thresholds, vec![f64::INFINITY, 0.8, 0.4, 0.35, 0.1]);
    // Ties: {.5 pos, .5 neg} form one step P 1/2 R 1/2; then .2 (pos) P 2/3 R 1.
    // AP = .5·.5 + .5·(2/3) = 7/12
    close(average_precision(&[0.5, 0.5, 0.2], &[true, false, true]).unwrap(), 7.0 / 12.0, 1e-15);
    close(average_precision(&[0.5, 0.5, 0.2], &[false, true, true]).unwrap(), 7.0 / 12.0, 1e-15);
    // No positives: undefined.
    assert_eq!(average_precision(&[0.5, 0.2], &[false, false]), None);
    assert_eq!(average_precision(&[], &[]), None);
    assert!(pr_curve(&[0.5], &[]).x.is_empty());
}

// ---------------------------------------------------------------- probabilities, calibration

#[test]
fn log_loss_by_hand_and_clipped() {
    // -(ln .8 + ln .5 + ln .25)/3 = ln(1/(.8·.5·.25))/3 = ln(10)/3 = 0.7675283643313485
    let p = preds(&[&[0.2, 0.8], &[0.5, 0.5], &[0.75, 0.25]], &[1, 0, 1]);
    close(log_loss(&p), 10f64.ln() / 3.0, 1e-7);
    // p = 0 on the label is clipped to 1e-15: −ln(1e-15) = 15·ln 10 = 34.538776394910684
    close(log_loss(&preds(&[&[1.0, 0.0]], &[1])), 34.538_776_394_910_684, 1e-9);
    // p = 1 is clipped to 1 − 1e-15: about 1e-15, not exactly 0.
    let l = log_loss(&preds(&[&[0.0, 1.0]], &[1]));
    assert!(l > 0.0 && l < 2e-15, "{l}");
}

#[test]
fn brier_by_hand() {
    // [.8, .2] label 0: .2² + .2² = .08;  [.4, .6] label 0: .6² + .6² = .72;  mean .4
    close(brier(&preds(&[&[0.8, 0.2], &[0.4, 0.6]], &[0, 0])), 0.4, 1e-7);
}

#[test]
fn perplexity_is_exp_of_mean_nll() {
    close(perplexity(20f64.ln()), 20.0, 1e-12);
    assert_eq!(perplexity(0.0), 1.0);
}

#[test]
fn ece_on_a_crafted_case() {
    // 5 bins: (0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1]
    // conf .9 right, .9 wrong      -> bin 4: acc 1/2, conf .9,  gap .4,  weight 2/5 -> .16
    // conf .7 right, .7 right      -> bin 3: acc 1,   conf .7,  gap .3,  weight 2/5 -> .12
    // conf .55 wrong               -> bin 2: acc 0,   conf .55, gap .55, weight 1/5 -> .11
    // ECE = .39
    let p = preds(&[&[0.9, 0.1], &[0.9, 0.1], &[0.3, 0.7], &[0.7, 0.3], &[0.45, 0.55]], &[0, 1, 1, 0, 0]);
    close(ece(&p, 5), 0.39, 1e-7);
    let table = reliability(&p, 5);
    let counts: Vec<u64> = table.iter().map(|b| b.count).collect();
    assert_eq!(counts, vec![0, 0, 1, 2, 2]);
    close(table[4].accuracy, 0.5, 0.0);
    close(table[3].confidence, 0.7, 1e-7);
    assert!(table[0].accuracy.is_nan() && table[0].confidence.is_nan());
    assert_eq!((table[1].lo, table[1].hi), (0.2, 0.4));
    // Perfect calibration: four items at confidence .75 (all predict class 0), three right -> 0.
    let cal = preds(&[&[0.75, 0.25][..]; 4], &[0, 0, 0, 1]);
    close(ece(&cal, 10), 0.0, 0.0);
    assert!(ece(&cal, 0).is_nan());
}

#[test]
fn ece_bin_edges_close_the_bin_below() {
    // Confidence exactly .8 lands in (.6, .8], exactly 1 in (.8, 1], .5 in (.4, .6].
    let p = preds(&[&[0.8, 0.2], &[1.0, 0.0], &[0.5, 0.5]], &[0, 0, 0]);
    let counts: Vec<u64> = reliability(&p, 5).iter().map(|b| b.count).collect();
    assert_eq!(counts, vec![0, 0, 1, 1, 1]);
}

// ---------------------------------------------------------------- regression

#[test]
fn regression_errors_by_hand() {
    // errors 0, 0, −2: MSE 4/3, MAE 2/3, RMSE √(4/3)
    let (pred, target) = ([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]);
    close(mse(&pred, &target), 4.0 / 3.0, 1e-15);
    close(mae(&pred, &target), 2.0 / 3.0, 1e-15);
    close(rmse(&pred, &target), (4.0f64 / 3.0).sqrt(), 1e-15);
    // mean 8/3, SS_tot = 25/9 + 4/9 + 49/9 = 78/9, SS_res = 4 -> R² = 1 − 36/78 = 7/13
    close(r2(&pred, &target), 7.0 / 13.0, 1e-15);
    for f in [mse, mae, rmse, r2] {
        assert!(f(&[], &[]).is_nan());
        assert!(f(&[1.0], &[1.0, 2.0]).is_nan());
    }
}

#[test]
fn r2_of_perfect_constant_and_worse_predictors() {
    let target = [1.0, 2.0, 3.0, 6.0];
    assert_eq!(r2(&target, &target), 1.0);
    // Predicting the mean (3) everywhere: SS_res = SS_tot -> 0.
    assert_eq!(r2(&[3.0; 4], &target), 0.0);
    // Predicting 0 everywhere: SS_res = 1 + 4 + 9 + 36 = 50, SS_tot = 4 + 1 + 0 + 9 = 14
    // -> 1 − 50/14 = −18/7
    close(r2(&[0.0; 4], &target), -18.0 / 7.0, 1e-15);
    // Constant target: 1 when hit exactly, else 0 (sklearn force_finite).
    assert_eq!(r2(&[2.0, 2.0], &[2.0, 2.0]), 1.0);
    assert_eq!(r2(&[2.0, 3.0], &[2.0, 2.0]), 0.0);
}

// ---------------------------------------------------------------- the standard set

#[test]
fn classification_metrics_keys_and_values() {
    let p = preds(&[&[0.9, 0.1], &[0.6, 0.4], &[0.65, 0.35], &[0.2, 0.8]], &[0, 0, 1, 1]);
    let m = classification_metrics(&p);
    let keys: Vec<&str> = m.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "accuracy",
            "auc",
            "average_precision",
            "balanced_accuracy",
            "brier",
            "ece",
            "f1_macro",
            "f1_micro",
            "f1_weighted",
            "log_loss",
            "mcc",
            "precision_macro",
            "precision_weighted",
            "recall_macro",
            "recall_weighted",
        ]
    );
    // predicted [0, 0, 0, 1]: accuracy 3/4; AUC and AP of the sklearn example (.75, 5/6).
    assert_eq!(m["accuracy"], 0.75);
    assert_eq!(m["auc"], 0.75);
    close(m["average_precision"], 5.0 / 6.0, 1e-15);
    assert_eq!(m["f1_micro"], 0.75);
    assert_eq!(m["log_loss"], log_loss(&p));
    assert_eq!(m["ece"], ece(&p, ECE_BINS));
    // Six classes with one missing: top_5 appears, auc does not.
    let six =
        Predictions::new(vec![0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.1, 0.1, 0.1, 0.1], vec![0, 5], 6)
            .unwrap();
    let m6 = classification_metrics(&six);
    assert!(!m6.contains_key("auc") && !m6.contains_key("average_precision"));
    // item 1: label 5 (.1) ranks after .5 and the four tied .1 at lower indices -> rank 5: miss.
    assert_eq!(m6["top_5"], 0.5);
}

// ---------------------------------------------------------------- McNemar

fn flags(b: usize, c: usize, both_right: usize, both_wrong: usize) -> (Vec<bool>, Vec<bool>) {
    let mut a = Vec::new();
    let mut bb = Vec::new();
    for (n, x, y) in
        [(b, true, false), (c, false, true), (both_right, true, true), (both_wrong, false, false)]
    {
        a.extend(std::iter::repeat_n(x, n));
        bb.extend(std::iter::repeat_n(y, n));
    }
    (a, bb)
}

#[test]
fn mcnemar_exact_regime() {
    // b = 1, c = 9: n = 10, 2·(C(10,0) + C(10,1))/2¹⁰ = 22/1024 = 0.021484375
    let (a, b) = flags(1, 9, 30, 5);
    let t = mcnemar(&a, &b).unwrap();
    assert_eq!((t.b, t.c, t.exact, t.statistic), (1, 9, true, 1.0));
    assert_eq!(t.p_value, 22.0 / 1024.0);
    // Wikipedia's McNemar example (a 59, b 6, c 16, d 80): exact p = 2·Σ_{i≤6} C(22,i)/2²²
    // = 2·110056/4194304 = 0.052478790283203125
    let (a, b) = flags(6, 16, 59, 80);
    let t = mcnemar(&a, &b).unwrap();
    assert!(t.exact);
    assert_eq!(t.p_value, 0.052_478_790_283_203_125);
    // Symmetric in which model is better.
    assert_eq!(mcnemar(&b, &a).unwrap().p_value, t.p_value);
    // b + c = 24 is still exact: 2·Σ_{i≤7} C(24,i)/2²⁴ = 0.06391465663909912
    let (a, b) = flags(7, 17, 0, 0);
    let t = mcnemar(&a, &b).unwrap();
    assert!(t.exact);
    close(t.p_value, 0.063_914_656_639_099_12, 1e-15);
    // No discordant items: nothing to test, p = 1. Equal split: p capped at 1.
    let (a, b) = flags(0, 0, 3, 2);
    assert_eq!(mcnemar(&a, &b).unwrap().p_value, 1.0);
    let (a, b) = flags(3, 3, 0, 0);
    assert_eq!(mcnemar(&a, &b).unwrap().p_value, 1.0);
}

#[test]
fn mcnemar_chi2_regime_textbook_tables() {
    // Agresti's presidential-approval table (794, 150 / 86, 570): b 150, c 86 -> b + c = 236.
    // Continuity-corrected χ² = (|150 − 86| − 1)²/236 = 3969/236 = 16.817796610169...,
    // p = erfc(√(χ²/2)) = 4.1145622813459e-5 (mpmath).
    let (a, b) = flags(150, 86, 794, 570);
    let t = mcnemar(&a, &b).unwrap();
    assert!(!t.exact);
    close(t.statistic, 3969.0 / 236.0, 1e-12);
    close(t.p_value, 4.114_562_281_345_945e-5, 1e-15);
    // Wikipedia's first table (b 121, c 59): (62 − 1)²/180 = 20.6722..., p = 5.45009482542712e-6
    let (a, b) = flags(121, 59, 101, 33);
    let t = mcnemar(&a, &b).unwrap();
    close(t.statistic, 3721.0 / 180.0, 1e-12);
    close(t.p_value, 5.450_094_825_427_12e-6, 1e-16);
    // b + c = 25 switches to χ²: (|15 − 10| − 1)²/25 = 0.64.
    let (a, b) = flags(15, 10, 0, 0);
    let t = mcnemar(&a, &b).unwrap();
    assert!(!t.exact);
    close(t.statistic, 0.64, 1e-15);
    // χ²(1) at 0.64: erfc(√0.32) = 0.4237107971667936 (mpmath)
    close(t.p_value, 0.423_710_797_166_793_6, 1e-13);
}

#[test]
fn mcnemar_rejects_mismatched_or_empty_input() {
    assert!(matches!(mcnemar(&[true], &[true, false]), Err(Error::Shape { .. })));
    assert!(matches!(mcnemar(&[], &[]), Err(Error::InvalidArgument { .. })));
}

// ---------------------------------------------------------------- bootstrap

fn acc_of(p: &Predictions) -> impl Fn(&[usize]) -> f64 + '_ {
    move |idx| accuracy(&p.subset(idx))
}

/// n items, the first `right` of every 10 correct.
fn pattern(n: usize, right: usize) -> Predictions {
    from_correctness(&(0..n).map(|i| i % 10 < right).collect::<Vec<_>>())
}

#[test]
fn bootstrap_percentile_positions_at_95() {
    // The statistic returns 0 on the point call, then 1, 2, ..., 1000 on the resamples.
    // Sorted replicates r_i = i + 1; the .025 quantile sits at position .025·999 = 24.975,
    // i.e. 25 + .975 = 25.975, and the .975 quantile at 974.025 -> 975.025.
    let calls = Cell::new(0.0);
    let stat = |_: &[usize]| {
        let v = calls.get();
        calls.set(v + 1.0);
        v
    };
    let i = bootstrap(10, 1000, 0.95, 1, stat).unwrap();
    assert_eq!(i.point, 0.0);
    close(i.lo, 25.975, 1e-9);
    close(i.hi, 975.025, 1e-9);
    assert_eq!(i.level, 0.95);
}

#[test]
fn bootstrap_is_reproducible_and_contains_the_point() {
    let p = pattern(400, 8);
    let a = bootstrap(p.len(), 1000, 0.95, 7, acc_of(&p)).unwrap();
    let b = bootstrap(p.len(), 1000, 0.95, 7, acc_of(&p)).unwrap();
    assert_eq!(a, b);
    let c = bootstrap(p.len(), 1000, 0.95, 8, acc_of(&p)).unwrap();
    assert_ne!((a.lo, a.hi), (c.lo, c.hi));
    assert_eq!(a.point, 0.8);
    assert!(a.contains(a.point) && a.lo < 0.8 && a.hi > 0.8, "{a:?}");
    // Binomial standard error √(.8·.2/400) = .02 -> a 95% interval about 2·1.96·.02 = .078 wide.
    assert!(a.width() > 0.06 && a.width() < 0.095, "{a:?}");
    // A narrower level gives a narrower interval from the same replicates.
    let n80 = bootstrap(p.len(), 1000, 0.80, 7, acc_of(&p)).unwrap();
    assert!(n80.lo >= a.lo && n80.hi <= a.hi && n80.width() < a.width());
}

#[test]
fn bootstrap_width_shrinks_with_n() {
    // Width scales as 1/√n: 100 -> 2500 items should shrink it about 5x.
    let small = pattern(100, 7);
    let large = pattern(2500, 7);
    let ws = bootstrap(small.len(), 1000, 0.95, 3, acc_of(&small)).unwrap().width();
    let wl = bootstrap(large.len(), 1000, 0.95, 3, acc_of(&large)).unwrap().width();
    assert!(wl < ws / 3.0 && wl > ws / 8.0, "small {ws}, large {wl}");
}

#[test]
fn bootstrap_rejects_bad_arguments() {
    let stat = |_: &[usize]| 0.0;
    for (n, r, level) in
        [(0, 1000, 0.95), (10, 999, 0.95), (10, 1000, 0.0), (10, 1000, 1.0), (10, 1000, f64::NAN)]
    {
        assert!(
            matches!(bootstrap(n, r, level, 0, stat), Err(Error::InvalidArgument { .. })),
            "n {n}, resamples {r}, level {level}"
        );
    }
}

#[test]
fn bootstrap_metrics_share_resamples_with_bootstrap() {
    let p = pattern(200, 7);
    let all = bootstrap_metrics(&p, 1000, 0.9, 11).unwrap();
    let keys: Vec<&String> = all.keys().collect();
    let want = classification_metrics(&p);
    assert_eq!(keys, want.keys().collect::<Vec<_>>());
    for (k, i) in &all {
        assert_eq!(i.point, want[k], "{k}");
        assert!(i.lo <= i.hi, "{k}: {i:?}");
    }
    // Same seed, same index draws: the accuracy interval is exactly bootstrap()'s.
    let acc = bootstrap(p.len(), 1000, 0.9, 11, acc_of(&p)).unwrap();
    assert_eq!(all["accuracy"], acc);
    assert!(bootstrap_metrics(&p, 10, 0.9, 11).is_err());
}

// ---------------------------------------------------------------- paired bootstrap

#[test]
fn paired_bootstrap_identical_models_show_no_difference() {
    let p = pattern(100, 7);
    let d = paired_bootstrap(&p, &p, accuracy, 1000, 0.95, 5).unwrap();
    assert_eq!((d.diff.point, d.diff.lo, d.diff.hi), (0.0, 0.0, 0.0));
    assert_eq!(d.p_value, 1.0);
}

#[test]
fn paired_bootstrap_detects_a_clear_difference() {
    // a is right on 9 of every 10 items, b on 6: the difference is 0.3 and clearly not 0.
    let a = pattern(200, 9);
    let b = pattern(200, 6);
    let d = paired_bootstrap(&a, &b, accuracy, 1000, 0.95, 5).unwrap();
    close(d.diff.point, 0.3, 1e-12);
    assert!(d.diff.lo > 0.0 && d.diff.contains(0.3), "{:?}", d.diff);
    assert_eq!(d.p_value, 0.0);
    // Same seed, same resamples as bootstrap() of the difference.
    let same =
        bootstrap(200, 1000, 0.95, 5, |idx| accuracy(&a.subset(idx)) - accuracy(&b.subset(idx))).unwrap();
    assert_eq!(d.diff, same);
    // Swapping the models flips the sign.
    let r = paired_bootstrap(&b, &a, accuracy, 1000, 0.95, 5).unwrap();
    close(r.diff.point, -0.3, 1e-12);
    close(r.diff.hi, -d.diff.lo, 1e-12);
}

/// `(#{d ≤ 0}, #{d ≥ 0})` over the resamples of `bootstrap` with this seed (its first call is
/// the point estimate, skipped), which draws the same indices as `paired_bootstrap`.
fn sides(a: &Predictions, b: &Predictions, seed: u64) -> (usize, usize) {
    let counts = Cell::new((0usize, 0usize));
    let first = Cell::new(true);
    bootstrap(a.len(), 1000, 0.95, seed, |idx| {
        let d = accuracy(&a.subset(idx)) - accuracy(&b.subset(idx));
        if !first.replace(false) {
            let (le, ge) = counts.get();
            counts.set((le + usize::from(d <= 0.0), ge + usize::from(d >= 0.0)));
        }
        d
    })
    .unwrap();
    counts.get()
}

#[test]
fn paired_bootstrap_p_value_counts_resamples_on_each_side_of_zero() {
    // a is right on items i % 10 < 7, b on i % 10 < 6 (a subset of a's): a is better on one
    // item in ten and never worse, so no resample has d < 0, and d = 0 needs a resample that
    // misses all 10 such items (chance .9^100 ≈ 3e-5): p = 2·#{d ≤ 0}/1000 ≈ 0.
    let a = pattern(100, 7);
    let b = pattern(100, 6);
    let d = paired_bootstrap(&a, &b, accuracy, 1000, 0.95, 9).unwrap();
    close(d.diff.point, 0.1, 1e-12);
    let (le, ge) = sides(&a, &b, 9);
    assert_eq!(ge, 1000);
    assert_eq!(d.p_value, 2.0 * le as f64 / 1000.0);
    assert!(d.p_value < 0.01);
    // a right on i % 10 in 0..7, b on 1..8: each better on one item in ten, no true difference.
    let b2 = from_correctness(&(0..100).map(|i| (1..8).contains(&(i % 10))).collect::<Vec<_>>());
    let d2 = paired_bootstrap(&a, &b2, accuracy, 1000, 0.95, 9).unwrap();
    assert_eq!(d2.diff.point, 0.0);
    let (le, ge) = sides(&a, &b2, 9);
    assert_eq!(d2.p_value, (2.0 * le.min(ge) as f64 / 1000.0).min(1.0));
    assert!(d2.p_value > 0.3, "{}", d2.p_value);
    assert!(d2.diff.lo < 0.0 && d2.diff.hi > 0.0, "{:?}", d2.diff);
}

#[test]
fn paired_bootstrap_rejects_different_items() {
    let a = pattern(10, 7);
    let b = pattern(12, 7);
    assert!(matches!(paired_bootstrap(&a, &b, accuracy, 1000, 0.95, 0), Err(Error::Shape { .. })));
    let mut c = a.clone();
    c.labels[3] = 1 - c.labels[3];
    let e = paired_bootstrap(&a, &c, accuracy, 1000, 0.95, 0).unwrap_err().to_string();
    assert!(e.contains("item 3"), "{e}");
    assert!(paired_bootstrap(&a, &a, accuracy, 100, 0.95, 0).is_err());
}

#[test]
fn roc_summary_is_class_one_for_binary_and_the_micro_average_otherwise() {
    // Three classes, two items: the six (item, class) pairs are the decisions. Positives score
    // 0.7 and 0.3; negatives 0.2, 0.1, 0.3, 0.4. 0.7 beats all four; 0.3 beats two, ties one
    // (half) and loses one: AUC = (4 + 2.5) / 8 = 0.8125.
    let p = Predictions::new(vec![0.7, 0.2, 0.1, 0.3, 0.3, 0.4], vec![0, 1], 3).unwrap();
    let (curve, auc) = roc_summary(&p);
    assert!((auc.unwrap() - 0.8125).abs() < 1e-12, "{auc:?}");
    assert_eq!(curve.x.len(), curve.y.len());
    assert_eq!((curve.x.last().copied(), curve.y.last().copied()), (Some(1.0), Some(1.0)));
    // Two classes: exactly roc_auc of column 1.
    let b = Predictions::new(vec![0.9, 0.1, 0.4, 0.6, 0.3, 0.7], vec![0, 1, 0], 2).unwrap();
    let want = roc_auc(&[0.1, 0.6, 0.7], &[false, true, false]);
    assert_eq!(roc_summary(&b).1, want);
    assert_eq!(want, Some(0.5));
}
