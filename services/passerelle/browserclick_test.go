package main

import (
	"fmt"

	"github.com/chromedp/chromedp"
)

// freshClick waits for sel, then queries and clicks it in one step: the
// live feed may swap a list between a query and a click, and a click on a
// node that is gone fails ("Could not find node with given id").
func freshClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.WaitVisible(sel),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).click()`, sel)))
}
